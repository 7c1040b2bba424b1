package sasl

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"strings"
)

// NewServer starts the server half of mech.
func NewServer(ctx context.Context, mech string, creds Credentials, opts ServerOptions) (Server, error) {
	switch mech {
	case Plain:
		return NewPlainServer(ctx, creds, opts), nil
	case Login:
		return NewLoginServer(ctx, creds, opts), nil
	case CRAMMD5, CRAMSHA1:
		return NewCRAMServer(ctx, mech, creds, opts), nil
	case DigestMD5:
		return NewDigestMD5Server(ctx, creds, opts), nil
	case ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus:
		if strings.HasSuffix(mech, "-PLUS") && opts.TLS == nil {
			return nil, fmt.Errorf("sasl: %s needs a TLS connection", mech)
		}
		return NewScramServer(ctx, mech, creds, opts), nil
	case NTLM:
		return NewNTLMServer(ctx, creds, opts), nil
	case GSSAPI:
		if opts.GSSAPI == nil {
			return nil, fmt.Errorf("sasl: %s needs a keytab (not configured)", mech)
		}
		return NewGSSAPIServer(ctx, creds, opts), nil
	}
	return nil, fmt.Errorf("sasl: unknown mechanism %q", mech)
}

// ClientOptions are what the client half of a password or token mechanism needs.
type ClientOptions struct {
	User     string
	Password string // the password, or the OAuth 2.0 token of XOAUTH2 and OAUTHBEARER
	// Host and Port name the server: DIGEST-MD5's digest-uri and OAUTHBEARER's host= and port=.
	Host string
	Port int
	// TLS is the connection's state, for the channel binding of the -PLUS mechanisms.
	TLS *tls.ConnectionState
}

// NewClient starts the client half of mech (GSSAPI excepted: it needs Kerberos tickets, see
// NewGSSAPIClient), the counterpart of NewServer for tern send and tern bench.
func NewClient(mech string, o ClientOptions) (Client, error) {
	switch mech {
	case Plain:
		return NewPlainClient("", o.User, o.Password), nil
	case Login:
		return NewLoginClient(o.User, o.Password), nil
	case CRAMMD5, CRAMSHA1:
		return NewCRAMClient(mech, o.User, o.Password), nil
	case DigestMD5:
		return NewDigestMD5Client(o.User, o.Password, o.Host, ""), nil
	case ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus:
		return NewScramClient(mech, "", o.User, o.Password, o.TLS), nil
	case NTLM:
		return NewNTLMClient(o.User, o.Password, "", ""), nil
	case XOAuth2:
		return NewXOAuth2Client(o.User, o.Password), nil
	case OAuthBearer:
		return NewOAuthBearerClient(o.User, o.Password, o.Host, o.Port), nil
	}
	return nil, fmt.Errorf("sasl: unknown client mechanism %q", mech)
}

// Mechanism is what tern knows of one SASL mechanism.
type Mechanism struct {
	// Name is as advertised in EHLO.
	Name string
	// Server: tern serve can offer it (NewServer). XOAUTH2 and OAUTHBEARER have only a client
	// half: tern does not serve OAuth.
	Server bool
	// Legacy: its stored secret is crackable at MD5/MD4 speed if the account store leaks, so
	// it is offered only when asked for (config's "all").
	Legacy bool
	// Plus: bound to the TLS channel (RFC 5802 §6), offered only over TLS.
	Plus bool
	// Secret is the kind of stored secret the server half verifies against: "" for PLAIN and
	// LOGIN, which check the password against the account store's own hash, and for GSSAPI,
	// which needs none (the KDC has verified the client).
	Secret string
}

// Mechanisms are every mechanism tern has, the server's in the order tern serve offers them
// by default: the one list that the configuration's defaults (checked by a test, since config
// is below sasl), tern auth's commands and tern send's choices are checked against or derived from.
func Mechanisms() []Mechanism {
	return []Mechanism{
		{Name: Plain, Server: true},
		{Name: Login, Server: true},
		{Name: ScramSHA256, Server: true, Secret: SecretScramSHA256},
		{Name: ScramSHA256Plus, Server: true, Plus: true, Secret: SecretScramSHA256},
		{Name: ScramSHA1, Server: true, Secret: SecretScramSHA1},
		{Name: ScramSHA1Plus, Server: true, Plus: true, Secret: SecretScramSHA1},
		{Name: CRAMMD5, Server: true, Legacy: true, Secret: SecretCRAMMD5},
		{Name: CRAMSHA1, Server: true, Legacy: true, Secret: SecretCRAMSHA1},
		{Name: DigestMD5, Server: true, Legacy: true, Secret: SecretDigestMD5},
		{Name: NTLM, Server: true, Legacy: true, Secret: SecretNTLM},
		{Name: GSSAPI, Server: true}, // offered only with a keytab
		{Name: XOAuth2},
		{Name: OAuthBearer},
	}
}

// SecretKind is the kind of stored secret mech verifies against (Mechanism.Secret); "" for
// PLAIN, LOGIN, GSSAPI and unknown names.
func SecretKind(mech string) string {
	for _, m := range Mechanisms() {
		if m.Name == mech {
			return m.Secret
		}
	}
	return ""
}

// Derive returns, by kind, the secrets that mechs need for account's new password: what the
// account store keeps so that no password is ever stored. A mechanism switched on later works
// for an account only after its next password change. realms are the local domains (the realms
// DIGEST-MD5 offers): its secret keeps a hash for the account's address in each, since clients
// answer with the first realm offered, which need not be the account's domain.
func Derive(account, password string, mechs []string, realms ...string) (map[string][]byte, error) {
	out := make(map[string][]byte)
	for _, m := range mechs {
		kind := SecretKind(m)
		if kind == "" || out[kind] != nil {
			continue
		}
		var v []byte
		var err error
		switch kind {
		case SecretCRAMMD5, SecretCRAMSHA1:
			v, err = deriveCRAM(kind, password)
		case SecretDigestMD5:
			v, err = deriveDigestMD5(account, password, realms)
		case SecretScramSHA1, SecretScramSHA256:
			v, err = deriveScram(kind, password, rand.Reader)
		case SecretNTLM:
			v, err = deriveNTLM(password)
		}
		if err != nil {
			return nil, fmt.Errorf("sasl: derive %s secret: %w", kind, err)
		}
		out[kind] = v
	}
	return out, nil
}
