package postgres

import (
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
)

// testCounter runs the counter tests on sv's PostgreSQL (called from TestPostgres, which
// owns the server).
func testCounter(t *testing.T, sv *server) {
	// The steps of ratelimit's TestTake: the shared counter answers as the memory one,
	// through two nodes (two stores on one database) taking turns.
	t.Run("Take", func(t *testing.T) {
		url := sv.newDatabase(t)
		var mu sync.Mutex
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		fail := func(err error) { t.Errorf("database error: %v", err) }
		nodes := []*Counter{
			NewCounter(openURL(t, url), clock, nil, fail),
			NewCounter(openURL(t, url), clock, nil, fail),
		}
		lim := ratelimit.Limit{N: 3, Window: time.Minute} // one event per 20s
		steps := []struct {
			advance time.Duration
			n       int
			ok      bool
			retry   time.Duration
		}{
			{0, 1, true, 0},
			{0, 2, true, 0},
			{0, 1, false, 20 * time.Second}, // the bucket is full: the next one fits in 20s
			{10 * time.Second, 1, false, 10 * time.Second},
			{10 * time.Second, 1, true, 0}, // one event forgotten
			{0, 1, false, 20 * time.Second},
			{time.Minute, 3, true, 0},  // a whole window: all forgotten
			{0, 4, false, time.Minute}, // more than the limit never fits
			{0, 0, true, 0},            // nothing to count
		}
		for i, s := range steps {
			mu.Lock()
			now = now.Add(s.advance)
			mu.Unlock()
			ok, retry := nodes[i%2].Take("account-messages alice@example.test", s.n, lim)
			if ok != s.ok || retry != s.retry {
				t.Fatalf("step %d (node %d): Take(%d) = %v, %v; want %v, %v", i, i%2, s.n, ok, retry, s.ok, s.retry)
			}
		}
		if ok, _ := nodes[0].Take("account-messages bob@example.test", 3, lim); !ok {
			t.Error("another key was refused")
		}
	})

	// Many sessions on both nodes at once take exactly the limit, never more.
	t.Run("Concurrent", func(t *testing.T) {
		url := sv.newDatabase(t)
		fail := func(err error) { t.Errorf("database error: %v", err) }
		a := NewCounter(openURL(t, url), time.Now, nil, fail)
		b := NewCounter(openURL(t, url), time.Now, nil, fail)
		lim := ratelimit.Limit{N: 50, Window: time.Hour}
		var wg sync.WaitGroup
		var mu sync.Mutex
		taken := 0
		for i := range 20 {
			c := a
			if i%2 == 1 {
				c = b
			}
			wg.Go(func() {
				for range 10 {
					if ok, _ := c.Take("k", 1, lim); ok {
						mu.Lock()
						taken++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if taken != lim.N {
			t.Errorf("%d of 200 taken under a limit of %d", taken, lim.N)
		}
	})
}

// testCounterDown: with the database stopped, Take answers from the fallback and reports the
// error (called last by TestPostgres: it stops the server).
func testCounterDown(t *testing.T, sv *server) {
	url := sv.newDatabase(t)
	var errs []error
	mem := ratelimit.NewMemory(time.Now, 0)
	c := NewCounter(openURL(t, url), time.Now, mem, func(err error) { errs = append(errs, err) })
	lim := ratelimit.Limit{N: 1, Window: time.Hour}
	sv.pg.Stop()
	if ok, _ := c.Take("k", 1, lim); !ok || len(errs) != 1 {
		t.Fatalf("first Take while down = %v, errors %v; want true and one error", ok, errs)
	}
	if ok, _ := c.Take("k", 1, lim); ok {
		t.Error("the fallback let a second event through a limit of 1")
	}
}
