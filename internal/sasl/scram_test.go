package sasl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/xdg-go/scram"

	"github.com/tern-mail/tern/internal/tlsutil"
)

// secretStore is the Credentials of the SCRAM and NTLM tests: the secrets of a map of account
// to password, derived once. A login without '@' is taken into example.test, as a real store
// does. broken and corrupt accounts are those of pwStore (plain_test.go).
type secretStore struct {
	secrets map[string]map[string][]byte // account -> kind -> secret
}

// scramAccounts are the accounts of the SCRAM and NTLM tests, and their passwords.
func scramAccounts() map[string]string {
	return map[string]string{
		"user@example.test":             "pencil",            // RFC 5802 §5, RFC 7677 §3
		"kenneth.burgener@example.test": "ImBB1999!",         // the seeds' user
		"bjørn@exämple.test":            "pässwörd",          // ISO 8859-1
		"zoë@example.test":              "密码",                // not ISO 8859-1
		"odd,=name@example.test":        "pencil",            // SCRAM escapes ',' and '='
		"roman@example.test":            "\u2168",            // SASLprep (NFKC) makes it "IX"
		"emoji@example.test":            "key\U0001F511word", // SASLprep refuses it
	}
}

func newSecretStore(t testing.TB, passwords map[string]string) *secretStore {
	t.Helper()
	s := &secretStore{secrets: map[string]map[string][]byte{}}
	for account, password := range passwords {
		m := map[string][]byte{}
		for _, kind := range []string{SecretScramSHA1, SecretScramSHA256} {
			secret, err := deriveScram(kind, password, nil)
			if err != nil {
				t.Fatalf("deriveScram(%s, %q): %v", kind, account, err)
			}
			m[kind] = secret
		}
		secret, err := deriveNTLM(password)
		if err != nil {
			t.Fatalf("deriveNTLM(%q): %v", account, err)
		}
		m[SecretNTLM] = secret
		s.secrets[account] = m
	}
	return s
}

func (s *secretStore) CheckPassword(ctx context.Context, login, password string) (string, error) {
	return "", fmt.Errorf("%w: secretStore has no passwords", ErrAuthFailed)
}

func (s *secretStore) Secret(ctx context.Context, login, kind string) (string, []byte, error) {
	account := strings.ToLower(login)
	if !strings.Contains(account, "@") {
		account += "@example.test"
	}
	switch account {
	case brokenAccount:
		return "", nil, errors.New("test store is down") // not one of ours: must become ErrUnavailable
	case corruptAccount:
		return account, []byte{1, 0, 0, 16, 0}, nil
	}
	secret, ok := s.secrets[account][kind]
	if !ok {
		return "", nil, fmt.Errorf("%w: no %s secret for %q", ErrAuthFailed, kind, login)
	}
	return account, secret, nil
}

// tlsConn is the two ends of one TLS connection, and the server's certificate.
type tlsConn struct {
	client, server *tls.ConnectionState
	cert           *x509.Certificate
}

// tlsPair makes a real TLS connection of the given version over net.Pipe, with a new
// self-signed certificate, so that channel binding data is real.
func tlsPair(t testing.TB, version uint16) tlsConn {
	t.Helper()
	cert, _, err := tlsutil.LoadOrCreate(t.TempDir(), "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	srv := tls.Server(s, tlsutil.ServerConfig(cert))
	srvErr := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err != nil {
			s.Close()
		}
		srvErr <- err
	}()
	cli := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	err = cli.HandshakeContext(ctx)
	if err != nil {
		c.Close()
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	cs, ss := cli.ConnectionState(), srv.ConnectionState()
	if cs.Version != version {
		t.Fatalf("negotiated %s, want %s", tls.VersionName(cs.Version), tls.VersionName(version))
	}
	return tlsConn{client: &cs, server: &ss, cert: leaf}
}

// fixedNonce returns a nonce generator for the server that always gives nonce.
func fixedNonce(nonce string) func() (string, error) {
	return func() (string, error) { return nonce, nil }
}

// TestScramVectors runs the exchanges of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3
// (SCRAM-SHA-256) through the server and the client, octet for octet.
func TestScramVectors(t *testing.T) {
	tests := []struct {
		mech, kind, salt                                   string
		clientNonce, serverNonce                           string
		clientFirst, serverFirst, clientFinal, serverFinal string
	}{{
		mech: ScramSHA1, kind: SecretScramSHA1, salt: "QSXCR+Q6sek8bf92",
		clientNonce: "fyko+d2lbbFgONRv9qkxdawL", serverNonce: "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}, {
		mech: ScramSHA256, kind: SecretScramSHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
		clientNonce: "rOprNGfwEbeRWgbNEkqO", serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}}
	for _, tt := range tests {
		t.Run(tt.mech, func(t *testing.T) {
			salt, err := base64.StdEncoding.DecodeString(tt.salt)
			if err != nil {
				t.Fatal(err)
			}
			secret, err := deriveScramSalt(tt.kind, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			store := &secretStore{secrets: map[string]map[string][]byte{"user@example.test": {tt.kind: secret}}}

			// The server, fed the RFC's client messages.
			s := newScramServer(context.Background(), tt.mech, store, ServerOptions{}, nil)
			s.nonce = fixedNonce(tt.serverNonce)
			steps := []struct{ in, out string }{{tt.clientFirst, tt.serverFirst}, {tt.clientFinal, tt.serverFinal}}
			for _, st := range steps {
				out, done, err := s.Next([]byte(st.in))
				if err != nil || done || string(out) != st.out {
					t.Fatalf("server: Next(%q) = %q, %v, %v; want %q", st.in, out, done, err, st.out)
				}
			}
			if out, done, err := s.Next([]byte{}); err != nil || !done || out != nil {
				t.Fatalf("server: Next(empty) = %q, %v, %v; want done", out, done, err)
			}
			if got := s.Identity(); got != "user@example.test" {
				t.Errorf("Identity = %q", got)
			}

			// The client, fed the RFC's server messages.
			c := NewScramClient(tt.mech, "", "user", "pencil", nil).(*scramClient)
			c.nonce = func() string { return tt.clientNonce }
			mech, ir, err := c.Start()
			if err != nil || mech != tt.mech || string(ir) != tt.clientFirst {
				t.Fatalf("client: Start = %q, %q, %v", mech, ir, err)
			}
			final, err := c.Next([]byte(tt.serverFirst))
			if err != nil || string(final) != tt.clientFinal {
				t.Fatalf("client: Next(server-first) = %q, %v; want %q", final, err, tt.clientFinal)
			}
			last, err := c.Next([]byte(tt.serverFinal))
			if err != nil || last == nil || len(last) != 0 {
				t.Fatalf("client: Next(server-final) = %q, %v; want an empty response", last, err)
			}
		})
	}
}

func TestDeriveScram(t *testing.T) {
	// Keys for "pencil" with RFC 7677's salt, from `gsasl --mkpasswd -m SCRAM-SHA-256 -p pencil
	// --iteration-count 4096 --salt W22ZaJ0SNY7soEsUEjb6gQ==` (GNU SASL 2.2.0).
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	b, err := deriveScramSalt(SecretScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := parseScramSecret(b, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString
	if got, want := enc(sec.storedKey), "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="; got != want {
		t.Errorf("StoredKey %s, want %s", got, want)
	}
	if got, want := enc(sec.serverKey), "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="; got != want {
		t.Errorf("ServerKey %s, want %s", got, want)
	}

	for _, tt := range []struct {
		kind string
		size int
	}{{SecretScramSHA1, 20}, {SecretScramSHA256, 32}} {
		a, err := deriveScram(tt.kind, "pencil", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := deriveScram(tt.kind, "pencil", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 6+scramSaltLen+2*tt.size || a[0] != scramSecretVersion {
			t.Errorf("%s: secret %x: want version 1 and %d octets", tt.kind, a, 6+scramSaltLen+2*tt.size)
		}
		sa, err := parseScramSecret(a, tt.size)
		if err != nil || sa.iters != scramIterations || len(sa.salt) != scramSaltLen {
			t.Errorf("%s: parsed %+v, %v", tt.kind, sa, err)
		}
		if bytes.Equal(a, b) {
			t.Errorf("%s: two derivations gave the same secret: the salt is not random", tt.kind)
		}
	}

	// SASLprep: "\u2168" (ROMAN NUMERAL NINE) and "I\u00adX" (soft hyphen) both prepare to "IX".
	fixed := bytes.Repeat([]byte{7}, 16)
	ix, _ := deriveScramSalt(SecretScramSHA256, "IX", fixed, 4096)
	for _, p := range []string{"\u2168", "I\u00adX"} {
		if got, _ := deriveScramSalt(SecretScramSHA256, p, fixed, 4096); !bytes.Equal(got, ix) {
			t.Errorf("password %q is not prepared to IX", p)
		}
	}

	if _, err := deriveScram("scram-sha-512", "pencil", nil); err == nil {
		t.Error("unknown kind: no error")
	}
	if _, err := deriveScram(SecretScramSHA256, "pencil", iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("failing random source: no error")
	}
	if _, err := deriveScramSalt(SecretScramSHA256, "pencil", nil, 4096); err == nil {
		t.Error("empty salt: no error")
	}
}

func TestParseScramSecret(t *testing.T) {
	good, err := deriveScram(SecretScramSHA1, "pencil", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseScramSecret(good, 20); err != nil {
		t.Fatalf("good secret: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short":         good[:5],
		"version 2":     append([]byte{2}, good[1:]...),
		"zero iters":    append([]byte{1, 0, 0, 0, 0}, good[5:]...),
		"huge iters":    append([]byte{1, 0xff, 0xff, 0xff, 0xff}, good[5:]...),
		"empty salt":    append([]byte{1, 0, 0, 16, 0, 0}, make([]byte, 40)...),
		"truncated":     good[:len(good)-1],
		"extra octet":   append(append([]byte{}, good...), 0),
		"SHA-256 sized": good, // checked as SHA-256 below
	} {
		size := 20
		if name == "SHA-256 sized" {
			size = 32
		}
		if _, err := parseScramSecret(b, size); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

var scramMechs = []string{ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus}

// TestScramRoundTrip runs tern's client against tern's server for every mechanism, without
// TLS and over real TLS 1.3 and TLS 1.2 connections.
func TestScramRoundTrip(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	tls13, tls12 := tlsPair(t, tls.VersionTLS13), tlsPair(t, tls.VersionTLS12)
	transports := []struct {
		name string
		conn *tlsConn
	}{{"plain", nil}, {"TLS1.3", &tls13}, {"TLS1.2", &tls12}}
	for _, mech := range scramMechs {
		for _, tr := range transports {
			for account, password := range scramAccounts() {
				t.Run(mech+"/"+tr.name+"/"+account, func(t *testing.T) {
					plus := strings.HasSuffix(mech, "-PLUS")
					var opts ServerOptions
					var clientTLS *tls.ConnectionState
					var cert *x509.Certificate
					if tr.conn != nil {
						opts.TLS, clientTLS, cert = tr.conn.server, tr.conn.client, tr.conn.cert
					}
					c := NewScramClient(mech, "", account, password, clientTLS)
					s := newScramServer(context.Background(), mech, store, opts, cert)
					identity, steps, err := runExchange(t, c, s)
					switch {
					case plus && tr.conn == nil:
						if err == nil {
							t.Fatal("-PLUS without TLS succeeded")
						}
						return
					case err != nil:
						t.Fatal(err)
					case identity != account || steps != 3:
						t.Fatalf("identity %q after %d steps, want %q after 3", identity, steps, account)
					}
				})
			}
		}
	}

	// Without a known certificate (NewScramServer today), a TLS 1.2 -PLUS exchange must choose
	// tls-exporter: tern's own client (tls-server-end-point on TLS 1.2) is refused.
	t.Run("TLS1.2 without certificate", func(t *testing.T) {
		opts := ServerOptions{TLS: tls12.server}
		c := NewScramClient(ScramSHA256Plus, "", "user", "pencil", tls12.client)
		_, _, err := runExchange(t, c, NewScramServer(context.Background(), ScramSHA256Plus, store, opts))
		checkErr(t, err, ErrAuthFailed)

		lib := scramLibClient(t, scram.SHA256, "user", "pencil")
		cb, err := scram.NewTLSExporterBinding(tls12.client)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = runExchange(t, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(cb)},
			NewScramServer(context.Background(), ScramSHA256Plus, store, opts))
		checkErr(t, err, nil)
	})
	// With the served certificate in the options, tls-server-end-point works on TLS 1.2.
	t.Run("TLS1.2 with certificate", func(t *testing.T) {
		opts := ServerOptions{TLS: tls12.server, Certificate: tls12.client.PeerCertificates[0]}
		c := NewScramClient(ScramSHA256Plus, "", "user", "pencil", tls12.client)
		_, _, err := runExchange(t, c, NewScramServer(context.Background(), ScramSHA256Plus, store, opts))
		checkErr(t, err, nil)
	})
}

// libClient is a Client made of an xdg-go/scram conversation, to send what tern's client does
// not (flag "y", other binding types, bindings of another connection).
type libClient struct {
	mech string
	conv *scram.ClientConversation
}

func (c *libClient) Start() (string, []byte, error) {
	first, err := c.conv.Step("")
	return c.mech, []byte(first), err
}

func (c *libClient) Next(challenge []byte) ([]byte, error) {
	out, err := c.conv.Step(string(challenge))
	return []byte(out), err
}

func scramLibClient(t *testing.T, h scram.HashGeneratorFcn, user, password string) *scram.Client {
	t.Helper()
	c, err := h.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestScramChannelBinding checks the refusals of RFC 5802 §6 and of bindings that do not
// belong to the connection.
func TestScramChannelBinding(t *testing.T) {
	store := newSecretStore(t, map[string]string{"user@example.test": "pencil"})
	tls13, tls12 := tlsPair(t, tls.VersionTLS13), tlsPair(t, tls.VersionTLS12)
	other13, other12 := tlsPair(t, tls.VersionTLS13), tlsPair(t, tls.VersionTLS12)
	lib := scramLibClient(t, scram.SHA256, "user", "pencil")
	exporter := func(st *tls.ConnectionState) scram.ChannelBinding {
		cb, err := scram.NewTLSExporterBinding(st)
		if err != nil {
			t.Fatal(err)
		}
		return cb
	}
	endpoint := func(st *tls.ConnectionState) scram.ChannelBinding {
		cb, err := scram.NewTLSServerEndpointBinding(st)
		if err != nil {
			t.Fatal(err)
		}
		return cb
	}
	tests := []struct {
		name   string
		mech   string
		conn   *tlsConn // the server's connection; nil: no TLS
		client Client
		want   error
	}{
		{"y without TLS", ScramSHA256, nil, &libClient{ScramSHA256, lib.NewConversationAdvertisingChannelBinding()}, nil},
		{"y over TLS 1.3: downgrade", ScramSHA256, &tls13, &libClient{ScramSHA256, lib.NewConversationAdvertisingChannelBinding()}, ErrAuthFailed},
		{"y over TLS 1.2: downgrade", ScramSHA256, &tls12, &libClient{ScramSHA256, lib.NewConversationAdvertisingChannelBinding()}, ErrAuthFailed},
		{"n over TLS", ScramSHA256, &tls13, &libClient{ScramSHA256, lib.NewConversation()}, nil},
		{"p with a non-PLUS name", ScramSHA256, &tls13, &libClient{ScramSHA256, lib.NewConversationWithChannelBinding(exporter(tls13.client))}, ErrProtocol},
		{"n with a -PLUS name", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversation()}, ErrProtocol},
		{"y with a -PLUS name", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationAdvertisingChannelBinding()}, ErrProtocol},
		{"exporter of TLS 1.3", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(exporter(tls13.client))}, nil},
		{"end-point over TLS 1.3", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(endpoint(tls13.client))}, nil},
		{"exporter of another connection", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(exporter(other13.client))}, ErrAuthFailed},
		{"end-point of another server", ScramSHA256Plus, &tls12, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(endpoint(other12.client))}, ErrAuthFailed},
		{"exporter of another TLS 1.2 connection", ScramSHA256Plus, &tls12, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(exporter(other12.client))}, ErrAuthFailed},
		{"tern client, other connection", ScramSHA256Plus, &tls13, NewScramClient(ScramSHA256Plus, "", "user", "pencil", other13.client), ErrAuthFailed},
		{"tls-unique", ScramSHA256Plus, &tls12, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(scram.NewTLSUniqueBinding(tls12.client.TLSUnique))}, ErrAuthFailed},
		{"unknown type", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(scram.ChannelBinding{Type: "tls-foo", Data: []byte{1}})}, ErrAuthFailed},
		{"bad type name", ScramSHA256Plus, &tls13, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(scram.ChannelBinding{Type: "tls_foo", Data: []byte{1}})}, ErrProtocol},
		{"-PLUS without TLS", ScramSHA256Plus, nil, &libClient{ScramSHA256Plus, lib.NewConversationWithChannelBinding(exporter(tls13.client))}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts ServerOptions
			var cert *x509.Certificate
			if tt.conn != nil {
				opts.TLS, cert = tt.conn.server, tt.conn.cert
			}
			_, _, err := runExchange(t, tt.client, newScramServer(context.Background(), tt.mech, store, opts, cert))
			checkErr(t, err, tt.want)
		})
	}

	// A -PLUS server without TLS refuses at once, even the request for an initial response.
	for _, mech := range []string{ScramSHA1Plus, ScramSHA256Plus} {
		_, done, err := NewScramServer(context.Background(), mech, store, ServerOptions{}).Next(nil)
		if !done || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s without TLS: Next(nil) = %v, %v; want done, ErrProtocol", mech, done, err)
		}
	}
}

// TestScramServerFailures covers the credential outcomes: where each fails and with what.
func TestScramServerFailures(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	tests := []struct {
		name, user, password string
		steps                int // the server step that fails
		want                 error
	}{
		{"wrong password", "user", "pencil!", 2, ErrAuthFailed},
		{"unknown user", "nobody", "pencil", 2, ErrAuthFailed}, // a decoy: fails like a wrong password
		{"store down", brokenAccount, "pencil", 1, ErrUnavailable},
		{"corrupt secret", corruptAccount, "pencil", 1, ErrUnavailable},
		{"prepared password", "roman", "IX", 3, nil},
		{"name with , and =", "odd,=name@example.test", "pencil", 3, nil},
	}
	for _, mech := range []string{ScramSHA1, ScramSHA256} {
		for _, tt := range tests {
			t.Run(mech+"/"+tt.name, func(t *testing.T) {
				c := NewScramClient(mech, "", tt.user, tt.password, nil)
				_, steps, err := runExchange(t, c, NewScramServer(context.Background(), mech, store, ServerOptions{}))
				checkErr(t, err, tt.want)
				if steps != tt.steps {
					t.Errorf("ended at server step %d, want %d", steps, tt.steps)
				}
			})
		}
	}

	// The decoy's server-first-message looks like a real one.
	s := NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{})
	out, _, err := s.Next([]byte("n,,n=nobody,r=abcdefgh"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(string(out), ",")
	salt, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[1], "s="))
	if len(f) != 3 || !strings.HasPrefix(f[0], "r=abcdefgh") || len(salt) != scramSaltLen || f[2] != "i=4096" {
		t.Errorf("decoy server-first-message %q does not look real", out)
	}
}

func TestScramAuthzID(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	tests := []struct {
		name, authzid, user string
		allow               bool
		identity            string
		want                error
	}{
		{"none", "", "user", false, "user@example.test", nil},
		{"same as typed", "user", "user", false, "user@example.test", nil},
		{"the account", "user@example.test", "user", false, "user@example.test", nil},
		{"another user", "kenneth.burgener", "user", false, "", ErrAuthFailed},
		{"another user, allowed", "kenneth.burgener", "user", true, "kenneth.burgener", nil},
		{"with , and =", "a,b=c", "user", true, "a,b=c", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewScramClient(ScramSHA256, tt.authzid, tt.user, "pencil", nil)
			identity, _, err := runExchange(t, c, NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{AllowAuthzID: tt.allow}))
			checkErr(t, err, tt.want)
			if identity != tt.identity {
				t.Errorf("identity %q, want %q", identity, tt.identity)
			}
		})
	}
}

func TestScramServerMalformed(t *testing.T) {
	store := newSecretStore(t, map[string]string{"user@example.test": "pencil"})
	long := strings.Repeat("a", scramMaxMessage)
	firsts := map[string]string{
		"empty":               "",
		"one field":           "n",
		"no nonce":            "n,,n=user",
		"empty nonce":         "n,,n=user,r=",
		"nonce not printable": "n,,n=user,r=ab\x7fcd",
		"bad flag":            "q,,n=user,r=abc",
		"empty cb name":       "p=,,n=user,r=abc",
		"bad authzid field":   "n,b=x,n=user,r=abc",
		"empty authzid":       "n,a=,n=user,r=abc",
		"bad = in user":       "n,,n=us=er,r=abc",
		"bad = in authzid":    "n,a=x=y,n=user,r=abc",
		"empty user":          "n,,n=,r=abc",
		"NUL in user":         "n,,n=us\x00er,r=abc",
		"mandatory extension": "n,,m=ext,n=user,r=abc",
		"no n=":               "n,,u=user,r=abc",
		"not UTF-8":           "n,,n=\xff,r=abc",
		"oversize":            "n,,n=user,r=" + long,
		"long user":           "n,,n=" + strings.Repeat("u", maxNameLen+1) + ",r=abc",
	}
	for name, first := range firsts {
		t.Run("first/"+name, func(t *testing.T) {
			_, done, err := NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{}).Next([]byte(first))
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, ErrProtocol)
		})
	}

	// Client-final messages, after a good client-first-message.
	const first = "n,,n=user,r=clientnonce"
	finals := map[string]struct {
		msg  func(serverFirst string) string
		want error
	}{
		"empty":           {func(string) string { return "" }, ErrProtocol},
		"one field":       {func(string) string { return "c=biws" }, ErrProtocol},
		"c= not base64":   {func(s string) string { return "c=!!,r=" + nonceOf(s) + ",p=" + zeros(32) }, ErrProtocol},
		"no c=":           {func(s string) string { return "x=biws,r=" + nonceOf(s) + ",p=" + zeros(32) }, ErrProtocol},
		"no r=":           {func(s string) string { return "c=biws,x=" + nonceOf(s) + ",p=" + zeros(32) }, ErrProtocol},
		"no p=":           {func(s string) string { return "c=biws,r=" + nonceOf(s) + ",x=" + zeros(32) }, ErrProtocol},
		"short proof":     {func(s string) string { return "c=biws,r=" + nonceOf(s) + ",p=" + zeros(20) }, ErrProtocol},
		"proof not b64":   {func(s string) string { return "c=biws,r=" + nonceOf(s) + ",p=###" }, ErrProtocol},
		"oversize":        {func(s string) string { return "c=biws,r=" + nonceOf(s) + "," + long + ",p=" + zeros(32) }, ErrProtocol},
		"wrong nonce":     {func(s string) string { return "c=biws,r=clientnonceX,p=" + zeros(32) }, ErrAuthFailed},
		"wrong gs2 echo":  {func(s string) string { return "c=eSws,r=" + nonceOf(s) + ",p=" + zeros(32) }, ErrAuthFailed},
		"wrong proof":     {func(s string) string { return "c=biws,r=" + nonceOf(s) + ",p=" + zeros(32) }, ErrAuthFailed},
		"extension, then": {func(s string) string { return "c=biws,r=" + nonceOf(s) + ",x=y,p=" + zeros(32) }, ErrAuthFailed},
	}
	for name, tt := range finals {
		t.Run("final/"+name, func(t *testing.T) {
			s := NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{})
			sf, _, err := s.Next([]byte(first))
			if err != nil {
				t.Fatal(err)
			}
			_, done, err := s.Next([]byte(tt.msg(string(sf))))
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, tt.want)
		})
	}
}

func nonceOf(serverFirst string) string {
	return strings.TrimPrefix(strings.Split(serverFirst, ",")[0], "r=")
}

func zeros(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }

// TestScramServerSequence covers the framing: no initial response, the empty last response,
// and calls after the end.
func TestScramServerSequence(t *testing.T) {
	store := newSecretStore(t, map[string]string{"user@example.test": "pencil"})
	newServer := func() Server { return NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{}) }

	// No initial response: an empty challenge, then the client's first message.
	s := newServer()
	c := NewScramClient(ScramSHA256, "", "user", "pencil", nil)
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ch, done, err := s.Next(nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", ch, done, err)
	}
	msg, err := c.Next(ch) // the client sends its first message again
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ch, done, err = s.Next(msg); err != nil || done {
			t.Fatalf("Next = %q, %v, %v", ch, done, err)
		}
		if msg, err = c.Next(ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, done, err := s.Next(msg); !done || err != nil || s.Identity() != "user@example.test" {
		t.Fatalf("end: %v, %v, identity %q", done, err, s.Identity())
	}
	if _, done, err := s.Next(nil); !done || !errors.Is(err, ErrProtocol) {
		t.Errorf("Next after the end = %v, %v; want done, ErrProtocol", done, err)
	}

	// An empty answer to the empty challenge.
	s = newServer()
	serverStep(t, s, nil)
	if _, done, err := s.Next([]byte{}); !done || !errors.Is(err, ErrProtocol) {
		t.Errorf("empty client-first-message: %v, %v", done, err)
	}

	// Something other than the empty response after server-final-message: no identity.
	s = newServer()
	c = NewScramClient(ScramSHA256, "", "user", "pencil", nil)
	_, msg, _ = c.Start()
	ch, _, _ = s.Next(msg)
	msg, _ = c.Next(ch)
	if _, done, err := s.Next(msg); done || err != nil {
		t.Fatalf("client-final-message: %v, %v", done, err)
	}
	if _, done, err := s.Next([]byte("v=again")); !done || !errors.Is(err, ErrProtocol) || s.Identity() != "" {
		t.Errorf("non-empty last response: %v, %v, identity %q", done, err, s.Identity())
	}

	// An unknown mechanism name.
	if _, done, err := NewScramServer(context.Background(), "SCRAM-SHA-512", store, ServerOptions{}).Next(nil); !done || err == nil {
		t.Errorf("SCRAM-SHA-512: %v, %v", done, err)
	}
	// A failing random source.
	broken := NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{Rand: iotest.ErrReader(errors.New("no entropy"))})
	if _, _, err := broken.Next([]byte("n,,n=user,r=abc")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("failing random source: %v, want ErrUnavailable", err)
	}
}

// TestScramClient covers the client's refusals.
func TestScramClient(t *testing.T) {
	tls13 := tlsPair(t, tls.VersionTLS13)
	for name, c := range map[string]Client{
		"-PLUS without TLS": NewScramClient(ScramSHA256Plus, "", "user", "pencil", nil),
		"unknown mechanism": NewScramClient("SCRAM-SHA-512", "", "user", "pencil", nil),
		"empty user":        NewScramClient(ScramSHA256, "", "", "pencil", nil),
		"user not prepped":  NewScramClient(ScramSHA256, "", "us\u0007er", "pencil", nil),
		"authzid bad":       NewScramClient(ScramSHA256, "a\u0007", "user", "pencil", nil),
	} {
		if _, _, err := c.Start(); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
	if _, ir, err := NewScramClient(ScramSHA256Plus, "", "user", "pencil", tls13.client).Start(); err != nil || !bytes.HasPrefix(ir, []byte("p=tls-exporter,,")) {
		t.Errorf("-PLUS over TLS 1.3: %q, %v", ir, err)
	}
	tls12 := tlsPair(t, tls.VersionTLS12)
	if _, ir, err := NewScramClient(ScramSHA1Plus, "", "user", "pencil", tls12.client).Start(); err != nil || !bytes.HasPrefix(ir, []byte("p=tls-server-end-point,,")) {
		t.Errorf("-PLUS over TLS 1.2: %q, %v", ir, err)
	}
	if _, ir, err := NewScramClient(ScramSHA256, "", "user", "pencil", tls13.client).Start(); err != nil || !bytes.HasPrefix(ir, []byte("n,,")) {
		t.Errorf("SCRAM-SHA-256 over TLS: %q, %v", ir, err)
	}

	// Server messages, against the RFC 7677 exchange (client nonce rOprNGfwEbeRWgbNEkqO).
	const (
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	tests := []struct {
		name    string
		replies []string // the server's challenges; the last one must fail
	}{
		{"nonce not extended", []string{"r=somethingelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"}},
		{"too few iterations", []string{"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024"}},
		{"garbage", []string{"hello"}},
		{"wrong signature", []string{serverFirst, "v=" + zeros(32)}},
		{"server error", []string{serverFirst, "e=invalid-proof"}},
		{"garbage final", []string{serverFirst, "x"}},
		{"extra challenge", []string{serverFirst, serverFinal, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewScramClient(ScramSHA256, "", "user", "pencil", nil).(*scramClient)
			c.nonce = func() string { return "rOprNGfwEbeRWgbNEkqO" }
			if _, _, err := c.Start(); err != nil {
				t.Fatal(err)
			}
			for i, r := range tt.replies {
				_, err := c.Next([]byte(r))
				if last := i == len(tt.replies)-1; last != (err != nil) {
					t.Fatalf("reply %d (%q): error %v", i, r, err)
				}
			}
			if _, err := c.Next(nil); err == nil {
				t.Error("Next after a failure succeeded")
			}
		})
	}
}

func ExampleNewScramClient() {
	// Passwords stay with the client; the server verifies against the derived secret.
	secret, err := deriveScram(SecretScramSHA256, "pencil", nil)
	if err != nil {
		panic(err)
	}
	store := &secretStore{secrets: map[string]map[string][]byte{"user@example.test": {SecretScramSHA256: secret}}}
	client := NewScramClient(ScramSHA256, "", "user", "pencil", nil)
	server := NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{})

	_, msg, err := client.Start() // client-first-message, as the initial response
	for err == nil {
		var challenge []byte
		var done bool
		challenge, done, err = server.Next(msg)
		if done {
			break
		}
		if err == nil {
			msg, err = client.Next(challenge)
		}
	}
	fmt.Println(server.Identity(), err)
	// Output: user@example.test <nil>
}

func FuzzScramServer(f *testing.F) {
	f.Add("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", uint8(0))
	f.Add("n,a=user,n=user,r=abc", "c=biws,r=abc,p="+zeros(32), uint8(1))
	f.Add("y,,n=user,r=abc", "c=eSws,r=abc,p="+zeros(32), uint8(1))
	f.Add("p=tls-exporter,,n=user,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLA==,r=abc,p="+zeros(32), uint8(3))
	f.Add("p=tls-server-end-point,a=x=2Cy,n=u=3Dser,r=abc,ext", "c=biws,r=abc,x=1,p="+zeros(20), uint8(2))
	f.Add("n,,n=nobody,r=abc", "", uint8(1))
	store := newSecretStore(f, map[string]string{"user@example.test": "pencil"})
	tls13 := tlsPair(f, tls.VersionTLS13)
	f.Fuzz(func(t *testing.T, first, final string, mech uint8) {
		m := scramMechs[int(mech)%len(scramMechs)]
		opts := ServerOptions{}
		if mech&4 != 0 {
			opts.TLS = tls13.server
		}
		s := newScramServer(context.Background(), m, store, opts, tls13.cert)
		for i, msg := range []string{first, final, ""} {
			_, done, err := s.Next([]byte(msg))
			if done {
				if err == nil {
					t.Fatalf("%s: authenticated after step %d by %q, %q", m, i+1, first, final)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v without done", err)
			}
		}
		t.Fatal("not done after three messages")
	})
}
