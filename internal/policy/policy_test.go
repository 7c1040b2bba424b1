package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/smtp"
)

type fakeAccounts map[string]error

// Exists: a key with a nil error exists; a key with an error fails with it; others do not exist.
func (f fakeAccounts) Exists(_ context.Context, addr string) (bool, error) {
	err, ok := f[strings.ToLower(addr)]
	if !ok {
		return false, nil
	}
	return err == nil, err
}

func TestCheckRcpt(t *testing.T) {
	r := NewRelay([]string{"Example.TEST", "example.org"}, fakeAccounts{
		"bob@example.test":  nil,
		"dead@example.test": errors.New("database is locked"),
		"a/b@example.test":  fmt.Errorf("%w: slash", accounts.ErrBadAddress),
	})
	anon := Client{IP: netip.MustParseAddr("192.0.2.1")}
	authed := Client{IP: anon.IP, Authenticated: true, User: "bob@example.test"}
	for _, tc := range []struct {
		name string
		c    Client
		rcpt smtp.Address
		want string
	}{
		{"local-user", anon, smtp.Address{Local: "bob", Domain: "example.test"}, "250 2.1.5 Ok"},
		{"local-user-case", anon, smtp.Address{Local: "Bob", Domain: "EXAMPLE.test"}, "250 2.1.5 Ok"},
		{"unknown-user", anon, smtp.Address{Local: "nobody", Domain: "example.org"}, "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"},
		{"impossible-name", anon, smtp.Address{Local: "a/b", Domain: "example.test"}, "550 5.1.1"},
		{"store-failure", anon, smtp.Address{Local: "dead", Domain: "example.test"}, "451 4.3.0"},
		{"relay-denied", anon, smtp.Address{Local: "x", Domain: "remote.example"}, "554 5.7.1 <x@remote.example>: Relay access denied"},
		{"relay-literal-denied", anon, smtp.Address{Local: "x", Domain: "[192.0.2.9]"}, "554 5.7.1"},
		{"relay-authenticated", authed, smtp.Address{Local: "x", Domain: "remote.example"}, "250 2.1.5 Ok"},
		{"postmaster-without-account", anon, smtp.Address{Local: "PostMaster", Domain: "example.org"}, "250 2.1.5 Ok"},
		{"remote-postmaster-is-relaying", anon, smtp.Address{Local: "postmaster", Domain: "remote.example"}, "554 5.7.1"},
		{"authenticated-still-needs-local-user", authed, smtp.Address{Local: "nobody", Domain: "example.test"}, "550 5.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.CheckRcpt(context.Background(), tc.c, tc.rcpt).String()
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func ExampleRelay_CheckRcpt() {
	relay := NewRelay([]string{"example.test"}, fakeAccounts{"bob@example.test": nil})
	client := Client{IP: netip.MustParseAddr("192.0.2.1")}
	for _, rcpt := range []smtp.Address{{Local: "bob", Domain: "example.test"}, {Local: "eve", Domain: "elsewhere.example"}} {
		fmt.Println(strings.TrimSpace(relay.CheckRcpt(context.Background(), client, rcpt).String()))
	}
	// Output:
	// 250 2.1.5 Ok
	// 554 5.7.1 <eve@elsewhere.example>: Relay access denied
}

// Only authenticated clients' messages get missing headers, and only when enabled.
func TestAddMissingHeaders(t *testing.T) {
	for _, tc := range []struct {
		on, authenticated, want bool
	}{
		{true, true, true},
		{true, false, false},
		{false, true, false},
		{false, false, false},
	} {
		c := Client{IP: netip.MustParseAddr("127.0.0.1"), Authenticated: tc.authenticated}
		if got := (Headers{AddMissing: tc.on}).AddMissingHeaders(c); got != tc.want {
			t.Errorf("enabled %v, authenticated %v: %v, want %v", tc.on, tc.authenticated, got, tc.want)
		}
	}
}

// Only unauthenticated mail on the smtp listener is judged, and only when enabled.
func TestInboundJudges(t *testing.T) {
	anon, user := Client{}, Client{Authenticated: true, User: "u@example.test"}
	for _, tc := range []struct {
		p        Inbound
		c        Client
		listener string
		want     bool
	}{
		{Inbound{Check: true}, anon, "smtp", true},
		{Inbound{Check: true}, user, "smtp", false},
		{Inbound{Check: true}, anon, "submission", false},
		{Inbound{Check: true}, anon, "submissions", false},
		{Inbound{}, anon, "smtp", false},
	} {
		if got := tc.p.Judges(tc.c, tc.listener); got != tc.want {
			t.Errorf("%+v.Judges(%+v, %s) = %v", tc.p, tc.c, tc.listener, got)
		}
	}
}
