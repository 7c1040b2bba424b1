package sasl

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// What tools (tern auth) need of DIGEST-MD5 beyond the Client interface: one response computed
// from a challenge with every input chosen by the caller, the rspauth the server must answer
// with, and the directives of any DIGEST-MD5 message, for showing what is on the wire.

// DigestMD5Params are the inputs of one DIGEST-MD5 response (RFC 2831 §2.1.2).
type DigestMD5Params struct {
	User, Password string
	// Authzid is the authorization identity; "" for none (act as User).
	Authzid string
	// Realm is the realm to log in to; "" takes the first one the server offers (none if it
	// offers none), as NewDigestMD5Client does.
	Realm string
	// Service is the serv-type of digest-uri. Default "smtp"; RFC 2831 §4's example is "imap".
	Service string
	// Host is the host of digest-uri: the server's name as the client knows it.
	Host string
	// Cnonce is the client nonce. Default: 32 octets from crypto/rand, in base64. A fixed
	// cnonce is for reproducing published examples: it makes the response predictable.
	Cnonce string
}

// DigestMD5Response answers a DIGEST-MD5 challenge (qop=auth, nc=00000001) as NewDigestMD5Client
// would, and returns the digest-response and the rspauth value (32 hex digits) the server must
// send back to show that it knows the password too (§2.1.3).
func DigestMD5Response(challenge []byte, p DigestMD5Params) (response []byte, rspauth string, err error) {
	if p.User == "" || p.Password == "" || p.Host == "" {
		return nil, "", errors.New("sasl: DIGEST-MD5: empty user name, password or host")
	}
	if p.Service == "" {
		p.Service = "smtp"
	}
	if strings.ContainsAny(p.Service, "/\"\\") || strings.Contains(p.Host, "/") {
		return nil, "", errors.New("sasl: DIGEST-MD5: service or host contains '/'")
	}
	cnonce := p.Cnonce
	if cnonce == "" {
		b := make([]byte, digestCnonceOctets)
		if _, err := io.ReadFull(rand.Reader, b); err != nil {
			return nil, "", fmt.Errorf("sasl: DIGEST-MD5: reading random octets: %w", err)
		}
		cnonce = base64.StdEncoding.EncodeToString(b)
	}
	c := newDigestMD5Client(p.User, p.Password, p.Service, p.Host, p.Realm)
	c.authzid = p.Authzid
	return c.respond(challenge, cnonce)
}

// DigestDirective is one name=value of a DIGEST-MD5 message, the value unquoted.
type DigestDirective struct {
	Name  string // lower-cased
	Value string
}

// ParseDigestMD5 splits a DIGEST-MD5 challenge, response or response-auth into its directives,
// in order, checking the syntax of RFC 2831 §7.1 but not which directives are present.
func ParseDigestMD5(msg []byte) ([]DigestDirective, error) {
	list, err := parseDigestDirectives(msg)
	if err != nil {
		return nil, fmt.Errorf("sasl: DIGEST-MD5: %w", err)
	}
	out := make([]DigestDirective, len(list))
	for i, d := range list {
		out[i] = DigestDirective{Name: d.name, Value: d.value}
	}
	return out, nil
}
