package sasl

import (
	"context"
	"crypto/rand"
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

// SecretKind is the kind of stored secret mech verifies against; "" for PLAIN and LOGIN, which
// check the password against the account store's own hash, and for GSSAPI, which needs none
// (the KDC has verified the client).
func SecretKind(mech string) string {
	switch mech {
	case CRAMMD5:
		return SecretCRAMMD5
	case CRAMSHA1:
		return SecretCRAMSHA1
	case DigestMD5:
		return SecretDigestMD5
	case ScramSHA1, ScramSHA1Plus:
		return SecretScramSHA1
	case ScramSHA256, ScramSHA256Plus:
		return SecretScramSHA256
	case NTLM:
		return SecretNTLM
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
