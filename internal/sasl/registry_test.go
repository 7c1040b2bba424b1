package sasl

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
)

// TestMechanisms: the table is what NewServer and Derive do, and the configuration's defaults
// (which config, below sasl, cannot derive from it) are exactly its classes, in its order.
func TestMechanisms(t *testing.T) {
	var defaults, legacy []string
	for _, m := range Mechanisms() {
		_, err := NewServer(context.Background(), m.Name, derivedCreds{}, ServerOptions{})
		if unknown := err != nil && strings.Contains(err.Error(), "unknown mechanism"); unknown == m.Server {
			t.Errorf("%s: Server %v, but NewServer says %v", m.Name, m.Server, err)
		}
		if s, _ := Derive("bob@example.test", "pw", []string{m.Name}, "example.test"); (len(s) == 1) != (m.Secret != "") || (m.Secret != "" && s[m.Secret] == nil) {
			t.Errorf("%s: Secret %q, but Derive gives %d kinds", m.Name, m.Secret, len(s))
		}
		if m.Plus != strings.HasSuffix(m.Name, "-PLUS") {
			t.Errorf("%s: Plus %v", m.Name, m.Plus)
		}
		switch {
		case !m.Server || m.Name == GSSAPI:
		case m.Legacy:
			legacy = append(legacy, m.Name)
		default:
			defaults = append(defaults, m.Name)
		}
	}
	if !slices.Equal(defaults, config.DefaultMechanisms()) || !slices.Equal(legacy, config.LegacyMechanisms()) || config.GSSAPI != GSSAPI {
		t.Errorf("config's defaults %q and legacy %q (and %q), sasl's %q and %q", config.DefaultMechanisms(), config.LegacyMechanisms(), config.GSSAPI, defaults, legacy)
	}
}

// Every mechanism, started by name, authenticates against secrets made by Derive.
func TestRegistryRoundTrip(t *testing.T) {
	all := []string{Plain, Login, CRAMMD5, CRAMSHA1, DigestMD5, ScramSHA1, ScramSHA256, NTLM}
	const account, password = "bob@example.test", "correct horse"
	secrets, err := Derive(account, password, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 6 {
		t.Errorf("Derive gave %d kinds, want 6 (PLAIN and LOGIN need none)", len(secrets))
	}
	creds := derivedCreds{account: account, password: password, secrets: secrets}
	clients := map[string]Client{
		Plain:       NewPlainClient("", account, password),
		Login:       NewLoginClient(account, password),
		CRAMMD5:     NewCRAMClient(CRAMMD5, account, password),
		CRAMSHA1:    NewCRAMClient(CRAMSHA1, account, password),
		DigestMD5:   NewDigestMD5Client("bob", password, "mx.example.test", "example.test"),
		ScramSHA1:   NewScramClient(ScramSHA1, "", account, password, nil),
		ScramSHA256: NewScramClient(ScramSHA256, "", account, password, nil),
		NTLM:        NewNTLMClient(account, password, "", "WS"),
	}
	for _, mech := range all {
		t.Run(mech, func(t *testing.T) {
			srv, err := NewServer(context.Background(), mech, creds, ServerOptions{Hostname: "mx.example.test", Realms: []string{"example.test"}})
			if err != nil {
				t.Fatal(err)
			}
			identity, _, err := runExchange(t, clients[mech], srv)
			if err != nil || identity != account {
				t.Fatalf("identity %q, err %v", identity, err)
			}
		})
	}
	// NewClient, by name, does the same for every mechanism a password logs in with.
	for _, mech := range all {
		t.Run("NewClient "+mech, func(t *testing.T) {
			user := account
			if mech == DigestMD5 {
				user = "bob"
			}
			c, err := NewClient(mech, ClientOptions{User: user, Password: password, Host: "mx.example.test"})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := NewServer(context.Background(), mech, creds, ServerOptions{Hostname: "mx.example.test", Realms: []string{"example.test"}})
			if err != nil {
				t.Fatal(err)
			}
			identity, _, err := runExchange(t, c, srv)
			if err != nil || identity != account {
				t.Fatalf("identity %q, err %v", identity, err)
			}
		})
	}
	if _, err := NewClient("GSSAPI", ClientOptions{}); err == nil {
		t.Error("NewClient started GSSAPI without tickets")
	}
	if _, err := NewServer(context.Background(), ScramSHA256Plus, creds, ServerOptions{}); err == nil {
		t.Error("a -PLUS server started without TLS")
	}
	if _, err := NewServer(context.Background(), "GSSAPI", creds, ServerOptions{}); err == nil {
		t.Error("an unknown mechanism started")
	}
	if s, _ := Derive(account, password, []string{Plain, ScramSHA256Plus, ScramSHA256}); len(s) != 1 || s[SecretScramSHA256] == nil {
		t.Errorf("Derive for PLAIN and SCRAM-SHA-256(-PLUS): %d kinds", len(s))
	}
}

// derivedCreds serves one account from Derive's output.
type derivedCreds struct {
	account, password string
	secrets           map[string][]byte
}

func (c derivedCreds) resolve(login string) (string, error) {
	if login == c.account || login+"@example.test" == c.account {
		return c.account, nil
	}
	return "", ErrAuthFailed
}

func (c derivedCreds) CheckPassword(_ context.Context, login, password string) (string, error) {
	acct, err := c.resolve(login)
	if err != nil || password != c.password {
		return "", ErrAuthFailed
	}
	return acct, nil
}

func (c derivedCreds) Secret(_ context.Context, login, kind string) (string, []byte, error) {
	acct, err := c.resolve(login)
	if err != nil || c.secrets[kind] == nil {
		return "", nil, ErrAuthFailed
	}
	return acct, c.secrets[kind], nil
}

// clientStep runs a step of c whose message the test does not look at (an NTLM client's
// NEGOTIATE_MESSAGE), failing the test if it fails.
func clientStep(t testing.TB, c Client) {
	t.Helper()
	if _, err := c.Next(nil); err != nil {
		t.Fatal(err)
	}
}

// serverStep gives s a response whose challenge the test does not look at, failing the test
// if s refuses it.
func serverStep(t testing.TB, s Server, resp []byte) {
	t.Helper()
	if _, _, err := s.Next(resp); err != nil {
		t.Fatal(err)
	}
}
