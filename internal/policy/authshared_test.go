package policy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
	"github.com/tern-mail/tern/internal/testutil"
)

// lockCheckCounter is a shared counter that fails the test when it is asked while a limiter
// holds its lock (a database round trip must not stall every other AUTH of the node).
type lockCheckCounter struct {
	t     *testing.T
	inner ratelimit.Counter // nil: the database is down, let through
	nodes []*AuthLimiter
	calls int
}

func (c *lockCheckCounter) Take(key string, n int, lim ratelimit.Limit) (bool, time.Duration) {
	for _, l := range c.nodes {
		if !l.mu.TryLock() {
			c.t.Errorf("shared counter asked for %s with the limiter locked", key)
			continue
		}
		l.mu.Unlock()
	}
	c.calls++
	if c.inner == nil {
		return true, 0
	}
	return c.inner.Take(key, n, lim)
}

// twoNodes returns two limiters sharing one counter (a ratelimit.Memory standing for the
// database, or, down, one that lets everything through) on one clock, and their logs.
func twoNodes(t *testing.T, down bool) (nodes [2]*AuthLimiter, logs [2]*testutil.SyncBuffer, shared *lockCheckCounter, clock *fakeClock) {
	clock = &fakeClock{t: time.Unix(1_800_000_000, 0)}
	shared = &lockCheckCounter{t: t}
	if !down {
		shared.inner = ratelimit.NewMemory(clock.now, 0)
	}
	for i := range nodes {
		logs[i] = &testutil.SyncBuffer{}
		nodes[i] = NewAuthLimiter(AuthLimits{MaxFailures: 10, Window: 15 * time.Minute, Block: 15 * time.Minute,
			Account: resolveLogin, Now: clock.now, Logger: slog.New(slog.NewTextHandler(logs[i], nil)), Shared: shared})
	}
	shared.nodes = nodes[:]
	return nodes, logs, shared, clock
}

// nodeStep is an authStep at node A or B.
type nodeStep struct {
	node string // "A" or "B"
	authStep
}

func TestAuthLimiterShared(t *testing.T) {
	step := func(node, ip, pass, login string, n int, want string) nodeStep {
		return nodeStep{node, authStep{ip: ip, pass: pass, login: login, n: n, want: want}}
	}
	tests := []struct {
		name  string
		down  bool // the shared counter fails: each node decides alone
		steps []nodeStep
		logs  [2][]string // lines each node's log must hold
	}{{
		name: "a client blocked at A is blocked at B; the owner logs in at B",
		steps: []nodeStep{
			step("A", "192.0.2.9", "wrong", "bob", 9, "535"),
			step("A", "192.0.2.9", "wrong", "bob", 1, "535 421"),
			step("B", "192.0.2.9", "right", "bob", 1, "421"),
			step("B", "192.0.2.9", "wrong", "carol", 1, "421"),
			step("B", "198.51.100.1", "right", "bob", 1, "235"),
		},
		logs: [2][]string{{`"auth block started" kind=client remote=192.0.2.9`}, nil},
	}, {
		name: "failures at both nodes add up to one block",
		steps: []nodeStep{
			step("A", "192.0.2.9", "wrong", "x1", 5, "535"),
			step("B", "192.0.2.9", "wrong", "x2", 4, "535"),
			step("B", "192.0.2.9", "wrong", "x3", 1, "535 421"),
			step("A", "192.0.2.9", "right", "bob", 1, "421"),
		},
		logs: [2][]string{nil, {`"auth block started" kind=client remote=192.0.2.9`}},
	}, {
		name: "an account attacked at A refuses at B a client that failed for it there, not a fresh one",
		steps: []nodeStep{
			step("B", "203.0.113.7", "wrong", "bob", 1, "535"),
			step("A", "198.51.100.1", "wrong", "bob", 3, "535"),
			step("A", "198.51.100.2", "wrong", "bob", 3, "535"),
			step("A", "198.51.100.3", "wrong", "bob", 3, "535"),
			step("B", "203.0.113.7", "right", "bob", 1, "535"),
			step("B", "203.0.113.8", "right", "BOB@example.test", 1, "235"),
			step("A", "198.51.100.4", "right", "bob", 1, "235"),
		},
		logs: [2][]string{{`"auth block started" kind=account user=bob@example.test`}, nil},
	}, {
		name: "database down: each node counts alone",
		down: true,
		steps: []nodeStep{
			step("A", "192.0.2.9", "wrong", "bob", 9, "535"),
			step("A", "192.0.2.9", "wrong", "bob", 1, "535 421"),
			step("B", "192.0.2.9", "wrong", "bob", 9, "535"),
			step("A", "192.0.2.9", "right", "bob", 1, "421"),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, logs, shared, _ := twoNodes(t, tt.down)
			for i, s := range tt.steps {
				l := nodes[strings.Index("AB", s.node)]
				ip := netip.MustParseAddr(s.ip)
				for j := range max(s.n, 1) {
					if got := l.run(ip, s.pass == "right", s.login); got != s.want {
						t.Fatalf("step %d (%s %s %s %s) #%d: got %q, want %q", i, s.node, s.ip, s.pass, s.login, j+1, got, s.want)
					}
				}
			}
			if shared.calls == 0 {
				t.Error("the shared counter was never asked")
			}
			for i, want := range tt.logs {
				for _, w := range want {
					if !strings.Contains(logs[i].String(), w) {
						t.Errorf("node %c log lacks %s:\n%s", "AB"[i], w, logs[i].String())
					}
				}
			}
		})
	}
}

// TestAuthLimiterSharedEnds: a block set at A ends at B when its time has passed.
func TestAuthLimiterSharedEnds(t *testing.T) {
	nodes, _, _, clock := twoNodes(t, false)
	ip := netip.MustParseAddr("192.0.2.9")
	for range 10 {
		nodes[0].run(ip, false, "bob")
	}
	if got := nodes[1].run(ip, true, "bob"); got != "421" {
		t.Fatalf("at B during the block: %s", got)
	}
	clock.advance(16 * time.Minute)
	for i, l := range nodes {
		if got := l.run(ip, true, "bob"); got != "235" {
			t.Errorf("node %d after the block: %s", i, fmt.Sprint(got))
		}
	}
}
