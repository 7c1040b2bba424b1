package sasl

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// Google's example of the XOAUTH2 initial response ("The SASL XOAUTH2 Mechanism").
func TestXOAuth2Vector(t *testing.T) {
	c := NewXOAuth2Client("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
	mech, ir, err := c.Start()
	if err != nil || mech != XOAuth2 {
		t.Fatalf("Start = %q, %v", mech, err)
	}
	const want = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
	if got := base64.StdEncoding.EncodeToString(ir); got != want {
		t.Errorf("initial response %s\nwant %s", got, want)
	}
	// The error challenge (Google's example JSON) is answered with an empty response, once.
	errJSON, _ := base64.StdEncoding.DecodeString("eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K")
	if resp, err := c.Next(errJSON); err != nil || resp == nil || len(resp) != 0 {
		t.Errorf("Next(error) = %q, %v; want an empty response", resp, err)
	}
	if _, err := c.Next(errJSON); err == nil {
		t.Errorf("second challenge answered")
	}
}

func TestXOAuth2Client(t *testing.T) {
	for _, tt := range []struct {
		name, user, token string
		ok                bool
	}{
		{"good", "u@example.test", "abc.DEF-123_~+/==", true},
		{"empty user", "", "tok", false},
		{"empty token", "u", "", false},
		{"only padding", "u", "==", false},
		{"^A in user", "u\x01", "tok", false},
		{"NUL in user", "u\x00", "tok", false},
		{"^A in token", "u", "to\x01k", false},
		{"space in token", "u", "to k", false},
		{"padding inside", "u", "to=k", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := NewXOAuth2Client(tt.user, tt.token).Start()
			if (err == nil) != tt.ok {
				t.Errorf("Start: %v", err)
			}
		})
	}
}

func ExampleNewXOAuth2Client() {
	c := NewXOAuth2Client("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
	mech, ir, _ := c.Start()
	fmt.Printf("AUTH %s %s\n", mech, base64.StdEncoding.EncodeToString(ir))
	// Output: AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==
}
