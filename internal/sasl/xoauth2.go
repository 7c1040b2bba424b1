package sasl

import (
	"errors"
	"fmt"
	"strings"
)

// XOAUTH2 is Google's OAuth 2.0 mechanism (never standardised; documented by Google and
// Microsoft, and still what Gmail and Microsoft 365 submission take). tern has only the
// client half: it does not serve OAuth. The initial response is
//
//	"user=" user ^A "auth=Bearer " token ^A ^A
//
// (^A is octet 0x01). On failure the server sends a challenge holding a JSON error (status,
// schemes, scope), the client answers it with an empty response, and the server then fails
// the exchange.
const XOAuth2 = "XOAUTH2"

// NewXOAuth2Client returns the client half of XOAUTH2 for user with an OAuth 2.0 access token.
func NewXOAuth2Client(user, token string) Client {
	return &xoauth2Client{user: user, token: token}
}

type xoauth2Client struct {
	user, token string
	answered    bool // the error challenge was answered
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	switch {
	case c.user == "" || c.token == "":
		return "", nil, errors.New("sasl: XOAUTH2: empty user name or token")
	case strings.ContainsAny(c.user, "\x00\x01"):
		return "", nil, errors.New("sasl: XOAUTH2: NUL or ^A in user name")
	}
	if err := checkBearerToken(c.token); err != nil {
		return "", nil, fmt.Errorf("sasl: XOAUTH2: %w", err)
	}
	return XOAuth2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, errors.New("sasl: XOAUTH2: unexpected second server challenge")
	}
	// The only challenge is the server's error report (JSON); the empty answer lets the
	// server end the exchange with its failure reply.
	c.answered = true
	return []byte{}, nil
}

// checkBearerToken checks an access token against RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Anything else would end up
// inside the ^A-separated message, or in a header the server cannot parse.
func checkBearerToken(token string) error {
	body := strings.TrimRight(token, "=")
	if body == "" {
		return errors.New("empty token")
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
		if !ok {
			return fmt.Errorf("token character %q at %d is not allowed in a bearer token (RFC 6750 §2.1)", c, i)
		}
	}
	return nil
}
