package app

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/ratelimit"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestThrottle: the outbound limit of a domain (its own, or the default) holds back the mail
// past it, logged once per domain until the domain's mail goes again; local mail and mail for
// several domains are not counted.
func TestThrottle(t *testing.T) {
	cfg := config.Default()
	cfg.Rate.Outbound = 2
	cfg.Rate.OutboundDomains = []string{"gmail.test=1", "free.test=0"}
	logs := &testutil.SyncBuffer{}
	r, err := newRateLimits(cfg, func(d string) bool { return d == "local.test" }, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	env := func(rcpts ...string) *envelope.Envelope {
		e := &envelope.Envelope{ID: "q1"}
		for _, a := range rcpts {
			e.Rcpts = append(e.Rcpts, envelope.Recipient{Addr: a})
		}
		return e
	}
	for i, s := range []struct {
		env  *envelope.Envelope
		wait bool
	}{
		{env("a@gmail.test"), false},
		{env("b@Gmail.TEST"), true}, // 1 per minute
		{env("c@gmail.test"), true},
		{env("a@other.test", "b@other.test"), false},
		{env("c@other.test"), false},
		{env("d@other.test"), true}, // the default, 2 per minute
		{env("a@free.test"), false}, {env("a@free.test"), false}, {env("a@free.test"), false},
		{env("a@local.test"), false}, {env("a@local.test"), false}, {env("a@local.test"), false},
		{env("x@gmail.test", "y@other.test"), false}, // two domains: not counted
		{env("x@local.test", "y@gmail.test"), true},  // the remote one counts
	} {
		if wait := r.throttle(s.env); (wait > 0) != s.wait {
			t.Errorf("step %d (%v): wait %v, want a wait: %v", i, s.env.Rcpts, wait, s.wait)
		}
	}
	if n := strings.Count(logs.String(), "mail to the domain waits"); n != 2 {
		t.Errorf("%d lines for the domains waiting, want 2 (gmail.test, other.test):\n%s", n, logs)
	}
}

func TestLimitsText(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b strings.Builder
	err := writeLimits(&b, []ratelimit.Usage{
		{Key: "connections 192.0.2.7", Limit: 10, Window: time.Minute, Used: 10, Reset: now.Add(time.Minute)},
		{Key: "account-messages alice@example.com", Limit: 1000, Window: time.Hour, Used: 3, Reset: now.Add(10 * time.Second)},
	}, now)
	got := b.String()
	want := `LIMIT             WHO                USED    PER     RESETS IN
connections       192.0.2.7          10/10   minute  1m0s
account-messages  alice@example.com  3/1000  hour    10s
`
	if err != nil || got != want {
		t.Errorf("got %v\n%s\nwant\n%s", err, got, want)
	}
	b.Reset()
	if err := writeLimits(&b, nil, now); err != nil || b.String() != "no rate limit counters in use\n" {
		t.Errorf("empty: %q, %v", b.String(), err)
	}
}
