package sasl

import (
	"fmt"
	"testing"
)

func TestOAuthBearerClient(t *testing.T) {
	for _, tt := range []struct {
		name, user, token, host string
		port                    int
		want                    string // "" for an error
	}{{
		// RFC 7628 §4.1.
		name: "RFC 7628", user: "user@example.com", token: "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
		host: "server.example.com", port: 143,
		want: "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
	}, {
		// curl's test 843 (its IMAP port, 9003).
		name: "curl", user: "user", token: "mF_9.B5f-4.1JqM", host: "127.0.0.1", port: 9003,
		want: "n,a=user,\x01host=127.0.0.1\x01port=9003\x01auth=Bearer mF_9.B5f-4.1JqM\x01\x01",
	}, {
		name: "no host or port", user: "u@example.test", token: "tok",
		want: "n,a=u@example.test,\x01auth=Bearer tok\x01\x01",
	}, {
		name: "no authzid", token: "tok", port: 587,
		want: "n,,\x01port=587\x01auth=Bearer tok\x01\x01",
	}, {
		name: "escaped authzid", user: "a,b=c", token: "tok",
		want: "n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01",
	}, {
		name: "bad token", user: "u", token: "a b",
	}, {
		name: "empty token", user: "u",
	}, {
		name: "^A in user", user: "u\x01", token: "tok",
	}, {
		name: "space in host", user: "u", token: "tok", host: "a b",
	}, {
		name: "port out of range", user: "u", token: "tok", port: 65536,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			mech, ir, err := NewOAuthBearerClient(tt.user, tt.token, tt.host, tt.port).Start()
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("Start = %q, want an error", ir)
			case tt.want != "" && (err != nil || mech != OAuthBearer || string(ir) != tt.want):
				t.Errorf("Start = %q, %q, %v\nwant %q", mech, ir, err, tt.want)
			}
		})
	}
}

// RFC 7628 §3.2.3: the error challenge is answered with a lone ^A, once.
func TestOAuthBearerError(t *testing.T) {
	c := NewOAuthBearerClient("user@example.com", "tok", "", 0)
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	challenge := []byte(`{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}`)
	if resp, err := c.Next(challenge); err != nil || string(resp) != "\x01" {
		t.Errorf("Next(error) = %q, %v; want ^A", resp, err)
	}
	if _, err := c.Next(challenge); err == nil {
		t.Errorf("second challenge answered")
	}
}

func ExampleNewOAuthBearerClient() {
	c := NewOAuthBearerClient("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143)
	mech, ir, _ := c.Start()
	fmt.Printf("%s %q\n", mech, ir)
	// Output: OAUTHBEARER "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
}
