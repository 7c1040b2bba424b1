package dkim

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

// TestMessageSigner checks which domain's keys sign a message, by its From field.
func TestMessageSigner(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := TXTValue(priv)
	if err != nil {
		t.Fatal(err)
	}
	res := mapResolver{RecordName("s1", "example.org"): {txt}}
	var asked []string
	source := func(_ context.Context, domain string) ([]SigningKey, error) {
		asked = append(asked, domain)
		if domain == "example.org" {
			return []SigningKey{{Domain: domain, Selector: "s1", Signer: priv}}, nil
		}
		return nil, nil
	}
	tests := []struct {
		from  string
		want  string // the result of the signature, "none" for none, or the error
		asked string // the domains asked of the source, uncached
	}{
		{"Alice <alice@example.org>", "pass s1 ed25519-sha256", "example.org"},
		{"alice@EXAMPLE.ORG", "pass s1 ed25519-sha256", ""},
		{"MAILER-DAEMON@mx.example.org", "pass s1 ed25519-sha256", "mx.example.org"},
		{"a@example.org, b@sub.example.org", "none", ""},
		{"a@example.org, b@example.org", "pass s1 ed25519-sha256", ""},
		{"alice@example.net", "none", "example.net"},
		{"josé@bücher.example.org", "pass s1 ed25519-sha256", "xn--bcher-kva.example.org"},
		{"not an address", "error", ""},
	}
	now := time.Unix(1e9, 0)
	m := NewMessageSigner(source, time.Minute, func() time.Time { return now })
	for _, tc := range tests {
		asked = nil
		msg := "From: " + tc.from + "\r\nSubject: hi\r\n\r\nbody\r\n"
		sig, err := m.Sign(context.Background(), strings.NewReader(msg))
		got := "none"
		switch {
		case err != nil:
			got = "error"
		case sig != "":
			got = statuses(mustVerify(t, []byte(sig+msg), res))
		}
		if got != tc.want || strings.Join(asked, " ") != tc.asked {
			t.Errorf("From %s: %s, asked %q; want %s, asked %q", tc.from, got, asked, tc.want, tc.asked)
		}
	}
	now = now.Add(time.Minute)
	asked = nil
	if _, err := m.Sign(context.Background(), strings.NewReader("From: a@example.org\r\n\r\n")); err != nil || len(asked) != 1 {
		t.Errorf("after the TTL: %v, asked %q; want the keys asked again", err, asked)
	}
}
