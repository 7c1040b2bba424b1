package smtpserver

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// testClock is a clock the test moves; sessions read it from their goroutines.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// withRate sets a policy.Rate with lim over counters on the clock c (nil: the real one;
// loopback not exempt).
func withRate(c *testClock, lim policy.RateLimits) func(*Options) {
	return func(o *Options) {
		lim.Logger = o.Logger
		var now func() time.Time
		if c != nil {
			now = c.now
		}
		o.Rate = policy.NewRate(ratelimit.NewMemory(now, 0), lim)
	}
}

// rateNeverReached has every client limit on, too high to be reached: what the checks cost.
var rateNeverReached = policy.RateLimits{
	ClientConnections: ratelimit.Limit{N: 1 << 30, Window: time.Minute},
	ClientMessages:    ratelimit.Limit{N: 1 << 30, Window: time.Minute},
	ClientRecipients:  ratelimit.Limit{N: 1 << 30, Window: time.Minute},
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func TestRateConnections(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withRate(clock, policy.RateLimits{ClientConnections: ratelimit.Limit{N: 1, Window: time.Minute}}))
	ts.dial(t, RoleMX).run(`
		S: 220
		C: QUIT
		S: 221`)
	ts.dial(t, RoleSubmission).run(`
		S: 421 4.7.0 Too many connections from 127.0.0.1: 1 connections per minute, try again later
		CLOSED`)
	// On the implicit TLS port the 421 comes inside TLS, where the client reads.
	ts.dial(t, RoleSubmissions).run(`
		S: 421 4.7.0 Too many connections from 127.0.0.1
		CLOSED`)
	clock.add(time.Minute)
	ts.dial(t, RoleMX).run(`
		S: 220`)
	if !strings.Contains(ts.logs.String(), `"rate limit exceeded" limit=connections key=127.0.0.1`) {
		t.Errorf("refusal not logged:\n%s", ts.logs)
	}
}

// An exempt client is never counted.
func TestRateExempt(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withRate(clock, policy.RateLimits{ClientConnections: ratelimit.Limit{N: 1, Window: time.Minute},
		ClientMessages: ratelimit.Limit{N: 1, Window: time.Minute}, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	for range 3 {
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RSET
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250`)
	}
}

func TestRateMessagesAndRecipients(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withRate(clock, policy.RateLimits{
		ClientMessages:   ratelimit.Limit{N: 2, Window: time.Minute},
		ClientRecipients: ratelimit.Limit{N: 2, Window: time.Minute}}))
	c := ts.dial(t, RoleMX)
	c.run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250 2.1.0 Ok
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<nobody@example.test>
		S: 550 5.1.1
		C: RCPT TO:<alice@example.test>
		S: 450 4.7.1 Recipient rate limit exceeded for 127.0.0.1: 2 recipients per minute
		C: DATA
		S: 354
		C: .
		S: 250 2.0.0 Ok: queued
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RSET
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 450 4.7.1 Message rate limit exceeded for 127.0.0.1: 2 messages per minute
		C: RCPT TO:<bob@example.test>
		S: 503 5.5.1 Error: need MAIL command`)
	clock.add(30 * time.Second) // one message and one recipient forgotten
	c.run(`
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 450 4.7.1 Recipient rate limit exceeded`)
}

func TestRateAccount(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, func(o *Options) {
		withAuth(nil)(o)
		withRate(clock, policy.RateLimits{
			AccountMessages:    ratelimit.Limit{N: 1, Window: time.Hour},
			AccountDayMessages: ratelimit.Limit{N: 2, Window: 24 * time.Hour},
			AccountRecipients:  ratelimit.Limit{N: 2, Window: time.Hour},
		})(o)
	})
	c := ts.dial(t, RoleSubmission)
	c.run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<postmaster@example.test>
		S: 450 4.7.1 Recipient rate limit exceeded for kenneth.burgener@example.test: 2 recipients per hour
		C: RSET
		S: 250
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 450 4.7.1 Message rate limit exceeded for kenneth.burgener@example.test: 1 messages per hour`)
	clock.add(time.Hour)
	c.run(`
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 250
		C: RSET
		S: 250
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 450 4.7.1 Message rate limit exceeded for kenneth.burgener@example.test: 1 messages per hour`)
	clock.add(time.Hour)
	c.run(`
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 450 4.7.1 Message rate limit exceeded for kenneth.burgener@example.test: 2 messages per day`)
	// Another client, the same account: still limited.
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 450 4.7.1 Message rate limit exceeded for kenneth.burgener@example.test`)
}
