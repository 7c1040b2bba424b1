package policy

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
)

// rateStep is one check at a moment: "conn", "mail" or "rcpt" by a client (ip, user), after the
// clock moved by advance, and the reply expected ("ok", or the reply's first line).
type rateStep struct {
	advance time.Duration
	op      string
	ip      string
	user    string
	want    string
}

func perMin(n int) ratelimit.Limit { return ratelimit.Limit{N: n, Window: time.Minute} }

func TestRate(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name  string
		lim   RateLimits
		steps []rateStep
	}{{
		name: "connections per client, recovered after the window",
		lim:  RateLimits{ClientConnections: perMin(2), Exempt: loopback},
		steps: []rateStep{
			{op: "conn", ip: "192.0.2.1", want: "ok"},
			{op: "conn", ip: "::ffff:192.0.2.1", want: "ok"}, // the same client
			{op: "conn", ip: "192.0.2.1", want: "421 4.7.0 Too many connections from 192.0.2.1: 2 connections per minute, try again later"},
			{op: "conn", ip: "192.0.2.2", want: "ok"},
			{op: "conn", ip: "127.0.0.1", want: "ok"}, {op: "conn", ip: "127.0.0.1", want: "ok"}, {op: "conn", ip: "::1", want: "ok"},
			{advance: 30 * time.Second, op: "conn", ip: "192.0.2.1", want: "ok"}, // one forgotten every 30s
			{op: "conn", ip: "192.0.2.1", want: "421 4.7.0 Too many connections from 192.0.2.1: 2 connections per minute, try again later"},
			{advance: time.Minute, op: "conn", ip: "192.0.2.1", want: "ok"},
		},
	}, {
		name: "IPv6 per /64",
		lim:  RateLimits{ClientConnections: perMin(1)},
		steps: []rateStep{
			{op: "conn", ip: "2001:db8:1:2::1", want: "ok"},
			{op: "conn", ip: "2001:db8:1:2::99", want: "421 4.7.0 Too many connections from 2001:db8:1:2::/64: 1 connections per minute, try again later"},
			{op: "conn", ip: "2001:db8:1:3::1", want: "ok"},
		},
	}, {
		name: "messages and recipients per client",
		lim:  RateLimits{ClientMessages: perMin(1), ClientRecipients: perMin(2), Exempt: loopback},
		steps: []rateStep{
			{op: "mail", ip: "127.0.0.9", want: "ok"},
			{op: "mail", ip: "127.0.0.9", want: "ok"}, // exempt
			{op: "mail", ip: "198.51.100.7", want: "ok"},
			{op: "mail", ip: "198.51.100.7", want: "450 4.7.1 Message rate limit exceeded for 198.51.100.7: 1 messages per minute"},
			{op: "rcpt", ip: "198.51.100.7", want: "ok"},
			{op: "rcpt", ip: "198.51.100.7", want: "ok"},
			{op: "rcpt", ip: "198.51.100.7", want: "450 4.7.1 Recipient rate limit exceeded for 198.51.100.7: 2 recipients per minute"},
			{advance: time.Minute, op: "mail", ip: "198.51.100.7", want: "ok"},
			{op: "rcpt", ip: "198.51.100.7", want: "ok"},
		},
	}, {
		name: "per account, from any address, exempt or not",
		lim: RateLimits{Exempt: loopback, AccountMessages: ratelimit.Limit{N: 2, Window: time.Hour},
			AccountDayMessages: ratelimit.Limit{N: 3, Window: 24 * time.Hour}, AccountRecipients: ratelimit.Limit{N: 1, Window: time.Hour},
			ExemptAccounts: []string{"Bulk@example.com"}},
		steps: []rateStep{
			{op: "mail", ip: "127.0.0.1", user: "alice@example.com", want: "ok"},
			{op: "mail", ip: "192.0.2.1", user: "alice@example.com", want: "ok"},
			{op: "mail", ip: "192.0.2.2", user: "alice@example.com", want: "450 4.7.1 Message rate limit exceeded for alice@example.com: 2 messages per hour"},
			{op: "mail", ip: "192.0.2.2", user: "bob@example.com", want: "ok"},
			{op: "mail", ip: "192.0.2.2", want: "ok"}, // unauthenticated: no account limit
			{op: "rcpt", ip: "127.0.0.1", user: "alice@example.com", want: "ok"},
			{op: "rcpt", ip: "127.0.0.1", user: "alice@example.com", want: "450 4.7.1 Recipient rate limit exceeded for alice@example.com: 1 recipients per hour"},
			{advance: time.Hour, op: "mail", ip: "127.0.0.1", user: "alice@example.com", want: "ok"},
			{op: "mail", ip: "127.0.0.1", user: "alice@example.com", want: "450 4.7.1 Message rate limit exceeded for alice@example.com: 3 messages per day"},
			{op: "mail", ip: "127.0.0.1", user: "bulk@example.com", want: "ok"},
			{op: "mail", ip: "127.0.0.1", user: "bulk@example.com", want: "ok"},
			{op: "mail", ip: "127.0.0.1", user: "bulk@example.com", want: "ok"},
			{advance: 24 * time.Hour, op: "mail", ip: "127.0.0.1", user: "alice@example.com", want: "ok"},
		},
	}, {
		name: "client limit and account limit: the first refusal answers",
		lim:  RateLimits{ClientMessages: perMin(1), AccountMessages: perMin(5)},
		steps: []rateStep{
			{op: "mail", ip: "192.0.2.1", user: "alice@example.com", want: "ok"},
			{op: "mail", ip: "192.0.2.1", user: "alice@example.com", want: "450 4.7.1 Message rate limit exceeded for 192.0.2.1: 1 messages per minute"},
			{op: "mail", ip: "192.0.2.3", user: "alice@example.com", want: "ok"},
		},
	}, {
		name: "nothing set: nothing limited",
		lim:  RateLimits{},
		steps: []rateStep{
			{op: "conn", ip: "192.0.2.1", want: "ok"}, {op: "conn", ip: "192.0.2.1", want: "ok"},
			{op: "mail", ip: "192.0.2.1", user: "a@b", want: "ok"}, {op: "rcpt", ip: "192.0.2.1", user: "a@b", want: "ok"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			var logs bytes.Buffer
			tc.lim.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			var told []string
			tc.lim.Refused = func(limit string) { told = append(told, limit) }
			r := NewRate(ratelimit.NewMemory(func() time.Time { return now }, 0), tc.lim)
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				c := Client{IP: netip.MustParseAddr(s.ip), User: s.user, Authenticated: s.user != ""}
				var (
					rep interface{ String() string }
					ok  bool
				)
				switch s.op {
				case "conn":
					rep, ok = r.Connect(c.IP)
				case "mail":
					rep, ok = r.Mail(c)
				case "rcpt":
					rep, ok = r.Rcpt(c)
				}
				got := "ok"
				if !ok {
					got = strings.TrimSuffix(rep.String(), "\r\n")
				}
				if got != s.want {
					t.Fatalf("step %d (%s from %s %s): %q, want %q", i, s.op, s.ip, s.user, got, s.want)
				}
			}
			// Every refusal was logged once, with who and which limit.
			refused := 0
			for _, s := range tc.steps {
				if s.want != "ok" {
					refused++
				}
			}
			if n := strings.Count(logs.String(), `"rate limit exceeded" limit=`); n != refused {
				t.Fatalf("%d refusals, %d logged:\n%s", refused, n, logs.String())
			}
			// And told to Refused by the limit's name, the one logged.
			if len(told) != refused {
				t.Fatalf("%d refusals, Refused told %q", refused, told)
			}
			for _, name := range told {
				if !strings.Contains(logs.String(), `"rate limit exceeded" limit=`+name+" ") {
					t.Errorf("Refused told %q, not logged:\n%s", name, logs.String())
				}
			}
		})
	}
}

func TestRateOutbound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := NewRate(ratelimit.NewMemory(func() time.Time { return now }, 0), RateLimits{})
	lim := ratelimit.Limit{N: 2, Window: time.Minute}
	for i, want := range []string{"ok", "ok", "30s", "ok(after 30s)"} {
		if i == 3 {
			now = now.Add(30 * time.Second)
		}
		wait, ok := r.Outbound("Gmail.COM", lim)
		got := fmt.Sprint(wait)
		if ok {
			got = "ok"
			if i == 3 {
				got = "ok(after 30s)"
			}
		}
		if got != want {
			t.Fatalf("take %d: %s, want %s", i, got, want)
		}
	}
	if _, ok := r.Outbound("example.com", ratelimit.Limit{}); !ok {
		t.Fatal("no limit refused")
	}
}

func TestWindowText(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "minute", time.Hour: "hour", 24 * time.Hour: "day", 2 * time.Second: "2s"} {
		if got := WindowText(d); got != want {
			t.Errorf("WindowText(%v) = %q, want %q", d, got, want)
		}
	}
}

// BenchmarkRatePerMessage is what the rate limits cost one message from an authenticated
// client with every limit on and none reached: the connection, MAIL and one RCPT (seven takes:
// the client's limit and the account's two windows at MAIL and RCPT), over 1024 clients.
func BenchmarkRatePerMessage(b *testing.B) {
	high := ratelimit.Limit{N: 1 << 30, Window: time.Minute}
	r := NewRate(ratelimit.NewMemory(nil, 0), RateLimits{ClientConnections: high, ClientMessages: high, ClientRecipients: high,
		AccountMessages: high, AccountRecipients: high, AccountDayMessages: high, AccountDayRecipients: high})
	clients := make([]Client, 1024)
	for i := range clients {
		clients[i] = Client{IP: netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), Authenticated: true, User: fmt.Sprintf("user%d@example.com", i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := clients[i%len(clients)]
		_, ok1 := r.Connect(c.IP)
		_, ok2 := r.Mail(c)
		_, ok3 := r.Rcpt(c)
		if !ok1 || !ok2 || !ok3 {
			b.Fatal("refused")
		}
	}
}
