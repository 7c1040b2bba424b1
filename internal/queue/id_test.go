package queue

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestIDGen(t *testing.T) {
	var g idGen
	const n = 100_000
	seen := make(map[string]bool, n)
	var last uint64
	prev := ""
	for i := range n {
		id := g.next()
		if len(id) < 10 || !validID(id) {
			t.Fatalf("id %q is not a valid queue id", id)
		}
		for _, c := range id {
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
				t.Fatalf("id %q is not upper-case hex", id)
			}
		}
		v, err := strconv.ParseUint(id, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && (v <= last || id <= prev) {
			t.Fatalf("id %s after %s is not increasing", id, prev)
		}
		if seen[id] {
			t.Fatalf("id %s repeated", id)
		}
		seen[id] = true
		last, prev = v, id
	}

	t.Run("observe raises the floor", func(t *testing.T) {
		future := formatID(last + 1<<40)
		g.observe(future)
		if id := g.next(); id <= future || len(id) != len(future) {
			t.Errorf("next after observe(%s) = %s", future, id)
		}
		before := g.next()
		g.observe("0123456789") // lower: no effect
		g.observe("not hex")
		if id := g.next(); id <= before {
			t.Errorf("observe of a lower or bad id moved the floor down: %s after %s", id, before)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var g idGen
		var mu sync.Mutex
		all := make(map[string]bool)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ids := make([]string, 0, 5000)
				for range 5000 {
					ids = append(ids, g.next())
				}
				mu.Lock()
				defer mu.Unlock()
				for _, id := range ids {
					if all[id] {
						t.Errorf("id %s given twice", id)
					}
					all[id] = true
				}
			})
		}
		wg.Wait()
	})
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0123456789", true},
		{"18F2A3B4C5D6E", true},
		{"FFFFFFFFFFFFFFFF", true},
		{"012345678", false},         // too short
		{"0123456789ABCDEF0", false}, // too long
		{"18f2a3b4c5d6e", false},     // lower case
		{"../../etc/pass", false},    // a path
		{"0123456789/", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := validID(tc.id); got != tc.want {
			t.Errorf("validID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestIDAfterReopen checks that ids after a restart are above every id in the log, including
// those of finished messages whose records are still there.
func TestIDAfterReopen(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(nil)
	q, err := Open(dir, testOpts(fake))
	if err != nil {
		t.Fatal(err)
	}
	// As if the clock had been far ahead when this message came.
	q.ids.observe(formatID(uint64(time.Now().Add(24 * time.Hour).UnixMicro())))
	future := commitMsg(t, q, newEnv("a@example.test"), bodyFor(1, 10))
	q.Run(context.Background())
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openQueue(t, dir, testOpts(fake))
	w, err := q2.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if w.ID() <= future {
		t.Errorf("id %s after reopen is not above %s, a finished message still in the log", w.ID(), future)
	}
}

func TestOptionDefaults(t *testing.T) {
	q := openQueue(t, t.TempDir(), Options{InlineMax: 1 << 30})
	if q.opts.InlineMax > maxRecord/2 {
		t.Errorf("InlineMax %d is not capped below the largest record replay accepts", q.opts.InlineMax)
	}
	q2 := openQueue(t, t.TempDir(), Options{})
	want := Options{Workers: DefaultWorkers, InlineMax: DefaultInlineMax, SegmentSize: DefaultSegmentSize,
		MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff, MaxAge: DefaultMaxAge}
	if got := q2.opts; got.Workers != want.Workers || got.InlineMax != want.InlineMax || got.SegmentSize != want.SegmentSize ||
		got.MinBackoff != want.MinBackoff || got.MaxBackoff != want.MaxBackoff || got.MaxAge != want.MaxAge {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}
