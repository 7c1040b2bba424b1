package sasl

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on what a client may send as a name or a password. RFC 4616 §2 says a server MUST
// accept authzid, authcid and passwd of up to 255 octets each; that is a floor, not a ceiling.
const (
	// maxNameLen bounds login names and authorization identities: a full address is at most
	// 64 octets of local part, '@' and 255 of domain (RFC 5321 §4.5.3.1), rounded to 320.
	maxNameLen = 320
	// maxPasswordLen bounds passwords. tern's account store sets no length limit, so refusing
	// one between 256 and 1024 octets (a long generated password) would be a lockout that is
	// hard to diagnose; the bound is only there to cap the work of the password hash.
	maxPasswordLen = 1024
)

// NewPlainServer returns the server half of PLAIN (RFC 4616) for one exchange. The client's
// message is "authzid NUL authcid NUL passwd"; it comes as the initial response, or in answer
// to the empty challenge that Next(nil) returns.
//
// The password is checked with creds.CheckPassword(ctx, authcid, passwd). An authzid must be
// empty or name the authenticating user (as typed, or the account it resolved to; compared
// case-insensitively), unless opts.AllowAuthzID is set, in which case Identity reports the
// authzid as the client sent it and the caller decides whether the account may act for it.
func NewPlainServer(ctx context.Context, creds Credentials, opts ServerOptions) Server {
	return &plainServer{ctx: ctx, creds: creds, allowAuthzID: opts.AllowAuthzID}
}

// plainServer is the state of one PLAIN exchange.
type plainServer struct {
	ctx          context.Context
	creds        Credentials
	allowAuthzID bool

	challenged bool   // the empty challenge was sent; the next call carries the message
	done       bool   // the exchange is over (success or failure); further calls are errors
	identity   string // set on success
}

func (s *plainServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.done:
		return nil, true, fmt.Errorf("%w: PLAIN: exchange already over", ErrProtocol)
	case response == nil && !s.challenged:
		// No initial response: RFC 4616 §2 has the server send an empty challenge.
		s.challenged = true
		return []byte{}, false, nil
	}
	s.done = true
	authzid, authcid, password, err := parsePlainMessage(response)
	if err != nil {
		return nil, true, err
	}
	account, err := s.creds.CheckPassword(s.ctx, authcid, password)
	if err != nil {
		return nil, true, credentialsError(err)
	}
	identity, err := authzIdentity(authzid, authcid, account, s.allowAuthzID)
	if err != nil {
		return nil, true, err
	}
	s.identity = identity
	return nil, true, nil
}

func (s *plainServer) Identity() string { return s.identity }

// parsePlainMessage splits a PLAIN message into its three fields and checks them against RFC
// 4616 §2: exactly two NULs, non-empty authcid and passwd, UTF-8 text, bounded lengths.
func parsePlainMessage(msg []byte) (authzid, authcid, password string, err error) {
	bad := func(format string, args ...any) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%w: PLAIN: "+format, append([]any{ErrProtocol}, args...)...)
	}
	if len(msg) > 2*maxNameLen+maxPasswordLen+2 {
		return bad("message longer than %d octets", 2*maxNameLen+maxPasswordLen+2)
	}
	fields := bytes.Split(msg, []byte{0})
	if len(fields) != 3 {
		return bad("want 3 NUL-separated fields, got %d", len(fields))
	}
	z, c, p := fields[0], fields[1], fields[2]
	switch {
	case len(c) == 0:
		return bad("empty authcid")
	case len(p) == 0:
		return bad("empty password")
	case len(z) > maxNameLen:
		return bad("authzid longer than %d octets", maxNameLen)
	case len(c) > maxNameLen:
		return bad("authcid longer than %d octets", maxNameLen)
	case len(p) > maxPasswordLen:
		return bad("password longer than %d octets", maxPasswordLen)
	case !utf8.Valid(z) || !utf8.Valid(c) || !utf8.Valid(p):
		// RFC 4616 §2: all three are UTF-8 strings.
		return bad("field is not valid UTF-8")
	}
	return string(z), string(c), string(p), nil
}

// NewPlainClient returns the client half of PLAIN. It sends the whole message as the initial
// response; should the caller not send it (a server that wants no initial response), it is
// the answer to the server's empty challenge. authzid is usually "".
func NewPlainClient(authzid, user, password string) Client {
	return &plainClient{authzid: authzid, user: user, password: password}
}

type plainClient struct {
	authzid, user, password string
	answered                bool // Next has answered the empty challenge
}

func (c *plainClient) message() ([]byte, error) {
	switch {
	case c.user == "" || c.password == "":
		return nil, errors.New("sasl: PLAIN: empty user name or password")
	case strings.ContainsRune(c.authzid+c.user+c.password, 0):
		return nil, errors.New("sasl: PLAIN: NUL in authzid, user name or password")
	}
	return []byte(c.authzid + "\x00" + c.user + "\x00" + c.password), nil
}

func (c *plainClient) Start() (string, []byte, error) {
	msg, err := c.message()
	if err != nil {
		return "", nil, err
	}
	return Plain, msg, nil
}

func (c *plainClient) Next(challenge []byte) ([]byte, error) {
	// The only challenge PLAIN has is the empty one sent when there was no initial response.
	if len(challenge) != 0 || c.answered {
		return nil, errors.New("sasl: PLAIN: unexpected server challenge")
	}
	c.answered = true
	return c.message()
}

// credentialsError turns an error of Credentials into one of the package's: ErrAuthFailed and
// ErrUnavailable pass through unchanged (with their detail, for the log), and anything else is
// a store failure the client cannot fix, so it becomes ErrUnavailable too.
func credentialsError(err error) error {
	if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// authzIdentity applies the authorization identity rule shared by PLAIN and DIGEST-MD5 and
// returns the identity of the exchange. typed is the login as the client typed it and account
// what Credentials resolved it to. Without allow, authzid must be empty or name the same user
// (RFC 4422 §3.4.1: the server decides whether the authentication identity may act as it).
func authzIdentity(authzid, typed, account string, allow bool) (string, error) {
	switch {
	case authzid == "", strings.EqualFold(authzid, typed), strings.EqualFold(authzid, account):
		return account, nil
	case allow:
		return authzid, nil
	}
	return "", fmt.Errorf("%w: authorization identity differs from the user and is not allowed", ErrAuthFailed)
}

// optionsRandom reads n random octets from opts.Rand, or crypto/rand. A failure is not the
// client's fault and may pass, so it is ErrUnavailable.
func optionsRandom(opts ServerOptions, n int) ([]byte, error) {
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: reading random octets: %w", ErrUnavailable, err)
	}
	return b, nil
}

// optionsNow is opts.Now, or time.Now.
func optionsNow(opts ServerOptions) time.Time {
	if opts.Now != nil {
		return opts.Now()
	}
	return time.Now()
}
