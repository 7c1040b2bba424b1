package policy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/testutil"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// resolveLogin resolves a login as the credential store does: a name without a domain is in
// example.test, case does not matter, and a name with a space is no account at all.
func resolveLogin(login string) (string, bool) {
	if strings.ContainsAny(login, " ") {
		return "", false
	}
	if !strings.Contains(login, "@") {
		login += "@example.test"
	}
	return strings.ToLower(login), true
}

// authStep is one AUTH exchange as a session runs it: Allow first (421 when the client is
// blocked), then the credentials, right or wrong; a right password the limiter refuses is
// answered like a wrong one (535), and a failure that blocks the client adds the 421.
type authStep struct {
	after time.Duration // advance the clock first
	ip    string
	pass  string // "right" or "wrong"
	login string
	n     int    // times (default 1); each must get want
	want  string // "235", "535", "535 421" or "421"
}

func (l *AuthLimiter) run(ip netip.Addr, right bool, login string) string {
	if _, ok := l.Allow(ip); !ok {
		return "421"
	}
	if right {
		if _, ok := l.Succeeded(ip, login); ok {
			return "235"
		}
	}
	if _, _, blocked := l.Failed(ip, login); blocked {
		return "535 421"
	}
	return "535"
}

func newTestAuthLimiter(logs *testutil.SyncBuffer) (*AuthLimiter, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	return NewAuthLimiter(AuthLimits{MaxFailures: 10, Window: 15 * time.Minute, Block: 15 * time.Minute,
		Account: resolveLogin, Now: clock.now, Logger: slog.New(slog.NewTextHandler(logs, nil))}), clock
}

func TestAuthLimiter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []authStep
		logs  []string // each must match a line of the log, in this order
	}{
		{
			name: "a guesser cannot lock the owner out",
			steps: []authStep{
				{ip: "192.0.2.1", pass: "wrong", login: "bob", n: 9, want: "535"},
				{ip: "192.0.2.1", pass: "wrong", login: "bob", want: "535 421"},
				{ip: "192.0.2.1", pass: "wrong", login: "bob", n: 40, want: "421"},
				// bob at home: his address never failed, and he gets in.
				{ip: "198.51.100.7", pass: "right", login: "bob", want: "235"},
				{ip: "198.51.100.7", pass: "right", login: "BOB@example.test", want: "235"},
				// The guesser is blocked even with the right password, for every account.
				{ip: "192.0.2.1", pass: "right", login: "bob", want: "421"},
				{ip: "192.0.2.1", pass: "right", login: "carol", want: "421"},
				{ip: "192.0.2.200", pass: "right", login: "carol", want: "235"},
				// After the block, counting starts over.
				{after: 15*time.Minute + time.Second, ip: "192.0.2.1", pass: "wrong", login: "carol", want: "535"},
			},
			logs: []string{
				`level=WARN msg="auth block started" kind=account user=bob@example.test remote=192.0.2.1 failures=10 until=`,
				`level=WARN msg="auth block started" kind=client remote=192.0.2.1 client=192.0.2.1 failures=10 until=`,
				`level=INFO msg="auth block ended" kind=(client|account) `,
				`level=INFO msg="auth block ended" kind=(client|account) `,
			},
		},
		{
			name: "every spelling of a login counts for one account",
			steps: []authStep{
				{ip: "192.0.2.1", pass: "wrong", login: "bob", n: 4, want: "535"},
				{ip: "192.0.2.2", pass: "wrong", login: "BOB", n: 3, want: "535"},
				{ip: "192.0.2.3", pass: "wrong", login: "Bob@Example.TEST", n: 3, want: "535"},
				// The account is under attack: the clients that failed for it are refused with
				// the right password too, and no client is blocked.
				{ip: "192.0.2.1", pass: "right", login: "bob@example.test", want: "535"},
				{ip: "192.0.2.2", pass: "right", login: "bob", want: "535"},
				{ip: "192.0.2.3", pass: "right", login: "alice", want: "235"},
				{ip: "198.51.100.7", pass: "right", login: "bob", want: "235"},
			},
			logs: []string{`level=WARN msg="auth block started" kind=account user=bob@example.test remote=192.0.2.3 failures=10 `},
		},
		{
			name: "a login that names no account counts as typed, lower-cased",
			steps: []authStep{
				{ip: "192.0.2.1", pass: "wrong", login: "No Such", n: 5, want: "535"},
				{ip: "192.0.2.2", pass: "wrong", login: "NO SUCH", n: 5, want: "535"},
			},
			logs: []string{`msg="auth block started" kind=account user="no such" `},
		},
		{
			name: "an IPv6 /64 is one client",
			steps: []authStep{
				{ip: "2001:db8::1", pass: "wrong", login: "a", n: 3, want: "535"},
				{ip: "2001:db8::2", pass: "wrong", login: "b", n: 3, want: "535"},
				{ip: "2001:db8::ffff:3", pass: "wrong", login: "c", n: 3, want: "535"},
				{ip: "2001:db8::4", pass: "wrong", login: "d", want: "535 421"},
				{ip: "2001:db8::5", pass: "right", login: "e", want: "421"},
				{ip: "2001:db8:0:1::1", pass: "right", login: "e", want: "235"},
				{ip: "::ffff:192.0.2.1", pass: "right", login: "e", want: "235"},
			},
			logs: []string{`msg="auth block started" kind=client remote=2001:db8::4 client=2001:db8::/64 failures=10 `},
		},
		{
			name: "a typo is forgiven, failures for other accounts are not",
			steps: []authStep{
				{ip: "192.0.2.1", pass: "wrong", login: "bob", n: 9, want: "535"},
				{ip: "192.0.2.1", pass: "right", login: "bob", want: "235"},
				{ip: "192.0.2.1", pass: "wrong", login: "carol", n: 9, want: "535"},
				{ip: "192.0.2.1", pass: "right", login: "mallory", want: "235"},
				{ip: "192.0.2.1", pass: "wrong", login: "carol", want: "535 421"},
			},
		},
		{
			name: "an attack lasts until the block time after its last failure",
			steps: []authStep{
				{ip: "192.0.2.1", pass: "wrong", login: "bob", n: 5, want: "535"},
				{ip: "192.0.2.2", pass: "wrong", login: "bob", n: 5, want: "535"},
				{after: 10 * time.Minute, ip: "192.0.2.3", pass: "wrong", login: "bob", want: "535"},
				// 192.0.2.1 failed 20 minutes ago: longer than the block time, so it is no
				// longer held to have failed; 192.0.2.3 failed 10 minutes ago.
				{after: 10 * time.Minute, ip: "192.0.2.1", pass: "right", login: "bob", want: "235"},
				{ip: "192.0.2.3", pass: "right", login: "bob", want: "535"},
				// 15 minutes after the last failure (the refused login above) the attack is over.
				{after: 15 * time.Minute, ip: "192.0.2.3", pass: "right", login: "bob", want: "235"},
			},
			logs: []string{
				`msg="auth block started" kind=account user=bob@example.test remote=192.0.2.2 failures=10 `,
				`level=INFO msg="auth block ended" kind=account user=bob@example.test`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			l, clock := newTestAuthLimiter(logs)
			for i, s := range tc.steps {
				clock.advance(s.after)
				for j := range max(s.n, 1) {
					if got := l.run(netip.MustParseAddr(s.ip), s.pass == "right", s.login); got != s.want {
						t.Fatalf("step %d (%s, %s password for %s), try %d: got %s, want %s\nlog:\n%s",
							i+1, s.ip, s.pass, s.login, j+1, got, s.want, logs.String())
					}
				}
			}
			l.Allow(netip.MustParseAddr("203.0.113.1")) // the next call notices ended blocks
			clock.advance(time.Hour)
			l.Allow(netip.MustParseAddr("203.0.113.1"))
			rest := logs.String()
			for _, want := range tc.logs {
				loc := regexp.MustCompile(`(?m)^.*` + want + `.*$`).FindStringIndex(rest)
				if loc == nil {
					t.Fatalf("no log line matching %q in the rest of the log:\n%s", want, rest)
				}
				rest = rest[loc[1]:]
			}
			if starts, ends := strings.Count(logs.String(), `"auth block started"`), strings.Count(logs.String(), `"auth block ended"`); starts != ends {
				t.Errorf("%d blocks started, %d ended:\n%s", starts, ends, logs.String())
			}
		})
	}
}

// Failures are answered after a delay that doubles up to the maximum; an account under attack
// gets the maximum at once, from any client.
func TestAuthLimiterDelays(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{MaxFailures: 4, Window: time.Minute, Block: 10 * time.Minute,
		BaseDelay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond, Now: clock.now})
	ip := netip.MustParseAddr("192.0.2.7")
	var delays []time.Duration
	for i := range 4 {
		d, r, blocked := l.Failed(ip, "")
		delays = append(delays, d)
		if blocked != (i == 3) {
			t.Fatalf("failure %d: blocked=%v", i+1, blocked)
		}
		if blocked && r.String() != "421 4.7.0 Error: too many failed authentications, try again later\r\n" {
			t.Errorf("block reply %q", r.String())
		}
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
	// Failures outside the window do not add up.
	other := netip.MustParseAddr("192.0.2.8")
	l.Failed(other, "")
	clock.advance(2 * time.Minute)
	if d, _, _ := l.Failed(other, ""); d != 100*time.Millisecond {
		t.Errorf("after the window: delay %v", d)
	}
	// Four clients fail once each for carol: her account is under attack, and the next failure
	// for it, from a fifth client, waits the longest.
	for i := range 4 {
		l.Failed(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "carol")
	}
	if d, _, blocked := l.Failed(netip.MustParseAddr("198.51.100.99"), "carol"); d != 300*time.Millisecond || blocked {
		t.Errorf("failure for an account under attack: delay %v, blocked %v", d, blocked)
	}
}

// The maps stay bounded under a spray of addresses and logins: stale records go.
func TestAuthLimiterSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{Window: time.Minute, Block: time.Minute, Now: clock.now})
	for i := range 5000 {
		l.Failed(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "user"+string(rune('a'+i%26))+strings.Repeat("x", i%1000))
	}
	clock.advance(2 * time.Minute)
	l.Failed(netip.MustParseAddr("192.0.2.1"), "bob")
	if n := len(l.clients) + len(l.accounts); n > 2 {
		t.Errorf("%d records left after the sweep, want 2", n)
	}
}

func ExampleAuthLimiter() {
	l := NewAuthLimiter(AuthLimits{MaxFailures: 3})
	guesser, owner := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	for range 3 {
		if _, r, blocked := l.Failed(guesser, "bob@example.test"); blocked {
			fmt.Println("guesser:", strings.TrimSpace(r.String()))
		}
	}
	_, ok := l.Succeeded(owner, "bob@example.test")
	fmt.Println("owner logs in:", ok)
	_, ok = l.Allow(guesser)
	fmt.Println("guesser may try again:", ok)
	// Output:
	// guesser: 421 4.7.0 Error: too many failed authentications, try again later
	// owner logs in: true
	// guesser may try again: false
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
