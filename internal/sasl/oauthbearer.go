package sasl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// OAuthBearer is OAUTHBEARER (RFC 7628), the standard form of XOAUTH2. tern has only the
// client half. The initial response (§3.1) is a GS2 header without channel binding, then
// key=value pairs each ended by ^A (0x01), then one more ^A:
//
//	"n,a=" user "," ^A ["host=" host ^A] ["port=" port ^A] "auth=Bearer " token ^A ^A
//
// On failure the server sends a JSON error as a challenge (§3.2.2), which the client must
// answer with a lone ^A (§3.2.3) so that the server can fail the exchange.
const OAuthBearer = "OAUTHBEARER"

// NewOAuthBearerClient returns the client half of OAUTHBEARER: user goes into the GS2 header
// as the authorization identity ("" for none), host and port (the server the client connected
// to; "" and 0 leave them out) into the host and port pairs.
func NewOAuthBearerClient(user, token, host string, port int) Client {
	return &oauthBearerClient{user: user, token: token, host: host, port: port}
}

type oauthBearerClient struct {
	user, token, host string
	port              int
	answered          bool // the error challenge was answered
}

func (c *oauthBearerClient) Start() (string, []byte, error) {
	switch {
	case strings.ContainsAny(c.user, "\x00\x01"):
		return "", nil, errors.New("sasl: OAUTHBEARER: NUL or ^A in user name")
	case strings.ContainsFunc(c.host, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		// §3.1: a value is VCHAR, SP, HTAB, CR or LF; a host name has none of the latter.
		return "", nil, errors.New("sasl: OAUTHBEARER: space or control character in host")
	case c.port < 0 || c.port > 65535:
		return "", nil, fmt.Errorf("sasl: OAUTHBEARER: port %d out of range", c.port)
	}
	if err := checkBearerToken(c.token); err != nil {
		return "", nil, fmt.Errorf("sasl: OAUTHBEARER: %w", err)
	}
	b := []byte("n,")
	if c.user != "" {
		// RFC 5801 §4: the saslname escapes ',' and '=' (as SCRAM does).
		b = append(b, "a="+strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)...)
	}
	b = append(b, ",\x01"...)
	if c.host != "" {
		b = append(b, "host="+c.host+"\x01"...)
	}
	if c.port != 0 {
		b = append(b, "port="+strconv.Itoa(c.port)+"\x01"...)
	}
	b = append(b, "auth=Bearer "+c.token+"\x01\x01"...)
	return OAuthBearer, b, nil
}

func (c *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, errors.New("sasl: OAUTHBEARER: unexpected second server challenge")
	}
	// §3.2.3: the only challenge is the error report; a lone ^A asks the server to finish.
	c.answered = true
	return []byte{0x01}, nil
}
