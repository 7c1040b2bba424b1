package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestAuthLimiterPerClient(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{MaxFailures: 4, Window: time.Minute, Block: 10 * time.Minute,
		BaseDelay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond}, clock.now)
	ip := netip.MustParseAddr("192.0.2.7")
	var delays []time.Duration
	for i := range 4 {
		if _, ok := l.Allow(ip); !ok {
			t.Fatalf("blocked before failure %d", i+1)
		}
		d, r, blocked := l.Failed(ip, "")
		delays = append(delays, d)
		if blocked != (i == 3) {
			t.Fatalf("failure %d: blocked=%v", i+1, blocked)
		}
		if blocked && !strings.HasPrefix(r.String(), "421 4.7.0 ") {
			t.Errorf("block reply %q", r.String())
		}
	}
	if want := []time.Duration{100, 200, 300, 300}; delays[0] != want[0]*time.Millisecond ||
		delays[1] != want[1]*time.Millisecond || delays[2] != want[2]*time.Millisecond || delays[3] != want[3]*time.Millisecond {
		t.Errorf("delays %v, want doubling from 100ms capped at 300ms", delays)
	}
	if r, ok := l.Allow(ip); ok || !strings.HasPrefix(r.String(), "421 4.7.0") {
		t.Fatalf("a blocked client was allowed: %q", r.String())
	}
	if _, ok := l.Allow(netip.MustParseAddr("192.0.2.8")); !ok {
		t.Error("another client was blocked")
	}
	clock.advance(10*time.Minute + time.Second)
	if _, ok := l.Allow(ip); !ok {
		t.Error("the block did not end")
	}
	// After the block and the window, the count starts over.
	if d, _, blocked := l.Failed(ip, ""); blocked || d != 100*time.Millisecond {
		t.Errorf("after the block: delay %v blocked %v", d, blocked)
	}
}

func TestAuthLimiterWindowAndSuccess(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{MaxFailures: 3, Window: time.Minute}, clock.now)
	ip := netip.MustParseAddr("2001:db8::1")
	l.Failed(ip, "")
	l.Failed(netip.MustParseAddr("2001:db8::2"), "") // same /64
	clock.advance(2 * time.Minute)
	if _, _, blocked := l.Failed(ip, ""); blocked {
		t.Error("failures outside the window counted")
	}
	l.Failed(ip, "")
	l.Succeeded(ip)
	if _, _, blocked := l.Failed(ip, ""); blocked {
		t.Error("a success did not clear the client's failures")
	}
}

// Guessing one account's password from many addresses is blocked too, and the block holds even
// for the right password.
func TestAuthLimiterPerAccount(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{MaxFailures: 3}, clock.now)
	var blocked bool
	for i := range 3 {
		_, _, blocked = l.Failed(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "Bob@example.test")
	}
	if !blocked {
		t.Fatal("the third failure for one account did not block it")
	}
	if r, b := l.Blocked("bob@EXAMPLE.test"); !b || !strings.HasPrefix(r.String(), "421 4.7.0") {
		t.Errorf("account not blocked: %v %q", b, r.String())
	}
	if _, b := l.Blocked("alice@example.test"); b {
		t.Error("another account blocked")
	}
	clock.advance(DefaultAuthBlock + time.Second)
	if _, b := l.Blocked("bob@example.test"); b {
		t.Error("the account block did not end")
	}
}

func TestCheckSender(t *testing.T) {
	for _, tc := range []struct {
		account string
		from    smtp.Address
		ok      bool
	}{
		{"bob@example.test", smtp.Address{Local: "bob", Domain: "example.test"}, true},
		{"bob@example.test", smtp.Address{Local: "Bob", Domain: "EXAMPLE.test"}, true},
		{"bob@example.test", smtp.Address{Local: "bob+lists", Domain: "example.test"}, true},
		{"bob@example.test", smtp.Address{}, true}, // null sender
		{"bob@example.test", smtp.Address{Local: "alice", Domain: "example.test"}, false},
		{"bob@example.test", smtp.Address{Local: "bob", Domain: "example.org"}, false},
		{"bob@example.test", smtp.Address{Local: "bobby", Domain: "example.test"}, false},
		{"a+b@example.test", smtp.Address{Local: "a+b", Domain: "example.test"}, true},
		{"a+b@example.test", smtp.Address{Local: "a", Domain: "example.test"}, false},
	} {
		r := CheckSender(tc.account, tc.from)
		if r.Positive() != tc.ok {
			t.Errorf("%s as %s: %q", tc.account, tc.from, r.String())
		}
		if !tc.ok && !strings.HasPrefix(r.String(), "553 5.7.1 <") {
			t.Errorf("refusal %q", r.String())
		}
	}
}
