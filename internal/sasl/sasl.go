// Package sasl implements the SASL mechanisms of SMTP AUTH (RFC 4954), each with a server half
// (for tern serve) and a client half (for tern auth and tern send): PLAIN, LOGIN, CRAM-MD5,
// CRAM-SHA1, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants, NTLM (v2; v1 on
// request, server side), and GSSAPI (Kerberos V5, RFC 4752, on top of github.com/jcmturner/gokrb5).
// XOAUTH2 and OAUTHBEARER (RFC 7628) have only a client half: tern does not serve OAuth.
//
// Mechanisms work on raw octets: base64, "334" framing and the "*" cancel belong to the SMTP
// layer, not here. The server halves never see a stored password: they verify against what the
// account store keeps for them (see Derive and the Secret* kinds), through the Credentials
// interface. Nothing here logs, and no secret or response ever appears in an error text.
//
// GSSAPI is the exception to "no I/O" on the client side only: its client half asks the KDC for
// a service ticket through the KerberosTickets it is given (package krb5 reads the credential
// cache or keytab and talks to the KDC). Its server half needs no account secret, only a keytab
// (ServerOptions.GSSAPI) and Credentials that implement AccountChecker.
package sasl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"time"
)

// Mechanism names, as advertised in EHLO.
const (
	Plain           = "PLAIN"
	Login           = "LOGIN"
	CRAMMD5         = "CRAM-MD5"
	CRAMSHA1        = "CRAM-SHA1"
	DigestMD5       = "DIGEST-MD5"
	ScramSHA1       = "SCRAM-SHA-1"
	ScramSHA1Plus   = "SCRAM-SHA-1-PLUS"
	ScramSHA256     = "SCRAM-SHA-256"
	ScramSHA256Plus = "SCRAM-SHA-256-PLUS"
	NTLM            = "NTLM"
)

// Kinds of stored secret, one per family of mechanisms. The password hash (argon2id) for PLAIN
// and LOGIN is kept by the account store itself and checked through Credentials.CheckPassword.
const (
	SecretCRAMMD5     = "cram-md5"      // HMAC-MD5 inner and outer states after the key (as Dovecot)
	SecretCRAMSHA1    = "cram-sha1"     // the same for HMAC-SHA1
	SecretDigestMD5   = "digest-md5"    // H(user:realm:password) for the login forms tern accepts
	SecretScramSHA1   = "scram-sha-1"   // salt, iterations, StoredKey, ServerKey
	SecretScramSHA256 = "scram-sha-256" // the same with SHA-256
	SecretNTLM        = "ntlm"          // the NT hash, MD4(UTF-16LE(password))
)

// Errors of a server exchange. The SMTP layer maps them to replies: ErrAuthFailed to
// 535 5.7.8, ErrProtocol to 501 5.5.2, ErrUnavailable to 454 4.7.0.
var (
	// ErrAuthFailed: wrong password, unknown user, or no stored secret for this mechanism;
	// deliberately one error, so the client cannot tell which.
	ErrAuthFailed = errors.New("sasl: authentication failed")
	// ErrProtocol wraps a malformed or out-of-sequence client message.
	ErrProtocol = errors.New("sasl: malformed client message")
	// ErrUnavailable wraps a failure of the credential store: the client may try again later.
	ErrUnavailable = errors.New("sasl: credentials unavailable")
)

// Server is the server side of one authentication exchange.
type Server interface {
	// Next takes the client's next message and returns the server's next challenge. The first
	// call carries the client's initial response, or nil when it sent none (the mechanism then
	// answers with its first challenge, possibly empty). When done is true the exchange is over:
	// err nil means the client is authenticated. Data the server must send with its success
	// (SCRAM's server-final message, DIGEST-MD5's rspauth) comes as one more challenge with done
	// false; the client's (empty) answer to it then ends the exchange.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Identity is the authenticated account (as Credentials returned it), after success.
	Identity() string
}

// Credentials is what the server halves need from the account store. Implementations resolve
// the login name (a name without a domain belongs to the default domain) and answer an unknown
// user exactly like a wrong password: ErrAuthFailed.
type Credentials interface {
	// CheckPassword verifies a cleartext password (PLAIN, LOGIN) and returns the account.
	CheckPassword(ctx context.Context, login, password string) (account string, err error)
	// Secret returns the stored secret of the given kind for login, and the account.
	Secret(ctx context.Context, login, kind string) (account string, secret []byte, err error)
}

// ServerOptions describe the connection a server exchange runs on.
type ServerOptions struct {
	// Hostname goes into CRAM challenges (<random.time@hostname>) and is the host of
	// DIGEST-MD5's digest-uri (smtp/hostname).
	Hostname string
	// Realms are offered by DIGEST-MD5 (tern offers its local domains).
	Realms []string
	// TLS is the connection's TLS state; nil without TLS. SCRAM-*-PLUS needs it for channel
	// binding, and a -PLUS mechanism is refused without it.
	TLS *tls.ConnectionState
	// Certificate is the leaf certificate this connection served, for SCRAM's
	// tls-server-end-point channel binding (RFC 5929): a server's ConnectionState lacks it.
	Certificate *x509.Certificate
	// AllowAuthzID lets PLAIN and SCRAM clients name an authorization identity other than the
	// user they authenticate as (acting for another account); it is refused by default.
	AllowAuthzID bool
	// NTLMv1 accepts NTLMv1 responses (also as NTLM2 session responses) to NTLM, for old
	// clients: one captured exchange is enough to crack the password's NT hash. Off by default.
	NTLMv1 bool
	// GSSAPI is the service's Kerberos state (keytab, principal, replay cache); the GSSAPI
	// mechanism is refused without it.
	GSSAPI *GSSAPIAcceptor
	// Rand and Now may be set by tests; nil means crypto/rand and time.Now.
	Rand io.Reader
	Now  func() time.Time
}

// Client is the client side of one exchange.
type Client interface {
	// Start returns the mechanism name and the initial response (nil for none).
	Start() (mech string, ir []byte, err error)
	// Next answers a server challenge.
	Next(challenge []byte) (response []byte, err error)
}
