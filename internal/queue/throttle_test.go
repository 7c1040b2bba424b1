package queue

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// TestThrottle: a message its destination's rate says to hold back waits among the deferred
// and goes when the wait is over, in a single attempt with no failure recorded; mail for
// elsewhere goes on meanwhile.
func TestThrottle(t *testing.T) {
	fake := newFake(nil)
	opts := testOpts(fake)
	opts.Destination = destinationOf
	var (
		mu    sync.Mutex
		asked = map[string]int{}
	)
	opts.Throttle = func(env *envelope.Envelope) time.Duration {
		if !strings.HasSuffix(env.Rcpts[0].Addr, "@busy.test") {
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		if asked[env.ID]++; asked[env.ID] == 1 {
			return 20 * time.Millisecond
		}
		return 0
	}
	q := openQueue(t, t.TempDir(), opts)
	runQueue(t, q)
	busy := commitMsg(t, q, newEnv("bob@busy.test"), []byte("Subject: b\r\n\r\nx\r\n"))
	other := commitMsg(t, q, newEnv("dave@other.test"), []byte("Subject: o\r\n\r\nx\r\n"))
	waitFor(t, "both delivered", func() bool { return fake.attempts(busy, 0) == 1 && fake.attempts(other, 0) == 1 && q.Len() == 0 })
	for _, c := range fake.allCalls() {
		if c.env.ID == busy && c.env.Attempts != 0 {
			t.Errorf("the throttled message came to its delivery with %d attempts recorded, want 0", c.env.Attempts)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[busy] != 2 {
		t.Errorf("Throttle asked %d times about the busy message, want 2", asked[busy])
	}
}
