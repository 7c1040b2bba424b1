package sasl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The LOGIN prompts. draft-murchison-sasl-login-00 §2 says the server SHOULD send "User Name"
// and "Password", but what clients expect, and what the seeds show real servers sending
// ("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"), is these.
const (
	loginUserPrompt     = "Username:"
	loginPasswordPrompt = "Password:"
)

// NewLoginServer returns the server half of the obsolete but ubiquitous LOGIN mechanism
// (draft-murchison-sasl-login): the server prompts "Username:" and then "Password:", and checks
// the two answers with creds.CheckPassword. An initial response, if the client sends one
// (RFC 4954 §4 allows it), is the user name, and the first prompt is then "Password:".
func NewLoginServer(ctx context.Context, creds Credentials, opts ServerOptions) Server {
	return &loginServer{ctx: ctx, creds: creds}
}

// loginServer is the state of one LOGIN exchange.
type loginServer struct {
	ctx   context.Context
	creds Credentials

	step     loginStep
	user     string // the answer to "Username:"
	identity string // set on success
}

type loginStep int

const (
	loginStart        loginStep = iota // nothing received yet
	loginWantUser                      // "Username:" sent
	loginWantPassword                  // "Password:" sent
	loginDone                          // over, with success or failure
)

func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case loginStart:
		if response == nil {
			s.step = loginWantUser
			return []byte(loginUserPrompt), false, nil
		}
		return s.takeUser(response)
	case loginWantUser:
		return s.takeUser(response)
	case loginWantPassword:
		s.step = loginDone
		switch {
		case len(response) == 0:
			return nil, true, fmt.Errorf("%w: LOGIN: empty password", ErrProtocol)
		case len(response) > maxPasswordLen:
			return nil, true, fmt.Errorf("%w: LOGIN: password longer than %d octets", ErrProtocol, maxPasswordLen)
		}
		// The password is passed on as sent, even if it is not UTF-8: the draft predates any
		// charset rule, and a password in a legacy charset simply will not match.
		account, err := s.creds.CheckPassword(s.ctx, s.user, string(response))
		if err != nil {
			return nil, true, credentialsError(err)
		}
		s.identity = account
		return nil, true, nil
	}
	return nil, true, fmt.Errorf("%w: LOGIN: exchange already over", ErrProtocol)
}

// takeUser records the user name and asks for the password.
func (s *loginServer) takeUser(response []byte) ([]byte, bool, error) {
	switch {
	case len(response) == 0:
		s.step = loginDone
		return nil, true, fmt.Errorf("%w: LOGIN: empty user name", ErrProtocol)
	case len(response) > maxNameLen:
		s.step = loginDone
		return nil, true, fmt.Errorf("%w: LOGIN: user name longer than %d octets", ErrProtocol, maxNameLen)
	case !utf8.Valid(response) || strings.ContainsRune(string(response), 0):
		s.step = loginDone
		return nil, true, fmt.Errorf("%w: LOGIN: user name is not NUL-free UTF-8", ErrProtocol)
	}
	s.user = string(response)
	s.step = loginWantPassword
	return []byte(loginPasswordPrompt), false, nil
}

func (s *loginServer) Identity() string { return s.identity }

// NewLoginClient returns the client half of LOGIN. It sends no initial response and answers
// the user-name and password prompts by their text (draft-murchison-sasl-login §1 says the
// client ignores the text, but answering by position would send the password to a server
// that asks for something else).
func NewLoginClient(user, password string) Client {
	return &loginClient{user: user, password: password}
}

type loginClient struct {
	user, password string
	answers        int // prompts answered so far
}

func (c *loginClient) Start() (string, []byte, error) {
	if c.user == "" || c.password == "" {
		return "", nil, errors.New("sasl: LOGIN: empty user name or password")
	}
	return Login, nil, nil
}

func (c *loginClient) Next(challenge []byte) ([]byte, error) {
	if c.answers >= 2 {
		return nil, errors.New("sasl: LOGIN: more than two server challenges")
	}
	c.answers++
	// Besides the usual prompts, accept the draft's own "User Name" and "Password", with the
	// trailing NUL some Microsoft servers add.
	switch p := strings.TrimSuffix(string(challenge), "\x00"); {
	case strings.EqualFold(p, loginUserPrompt), strings.EqualFold(p, "User Name"):
		return []byte(c.user), nil
	case strings.EqualFold(p, loginPasswordPrompt), strings.EqualFold(p, "Password"):
		return []byte(c.password), nil
	}
	return nil, fmt.Errorf("sasl: LOGIN: unexpected server challenge %q", truncateForError(challenge))
}

// truncateForError returns at most 64 octets of a peer's message, for an error text.
func truncateForError(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
