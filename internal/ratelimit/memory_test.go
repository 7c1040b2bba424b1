package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

// clock is a test clock that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time       { return c.t }
func (c *clock) add(d time.Duration)  { c.t = c.t.Add(d) }
func newClock() *clock                { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func perMinute(n int) Limit           { return Limit{N: n, Window: time.Minute} }
func take(m *Memory, key string) bool { ok, _ := m.Take(key, 1, perMinute(3)); return ok }

// TestTake walks a key through its limit and back: the burst, the refusal with the wait, the
// recovery one event per Window/N, and the whole window.
func TestTake(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 0)
	lim := perMinute(3) // one event per 20s
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
		c.add(s.advance)
		ok, retry := m.Take("k", s.n, lim)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d: Take(%d) = %v, %v; want %v, %v", i, s.n, ok, retry, s.ok, s.retry)
		}
	}
}

// TestKeysApart: one key's events do not count for another.
func TestKeysApart(t *testing.T) {
	m := NewMemory(newClock().now, 0)
	for range 3 {
		if !take(m, "a") {
			t.Fatal("a refused within its limit")
		}
	}
	if take(m, "a") {
		t.Fatal("a let through past its limit")
	}
	if !take(m, "b") {
		t.Fatal("b refused for a's events")
	}
}

func TestOff(t *testing.T) {
	m := NewMemory(newClock().now, 0)
	for _, lim := range []Limit{{}, {N: 5}, {Window: time.Second}} {
		for range 100 {
			if ok, _ := m.Take("k", 1, lim); !ok {
				t.Fatalf("%+v refused", lim)
			}
		}
	}
	if m.Len() != 0 {
		t.Fatalf("an off limit kept %d keys", m.Len())
	}
}

// TestSweep: keys whose events are forgotten are dropped, so memory follows the active keys.
func TestSweep(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 0)
	for i := range sweepEvery - 1 {
		take(m, fmt.Sprint("old", i))
	}
	c.add(time.Minute)
	take(m, "new") // the sweepEvery-th take sweeps
	if n := m.Len(); n != 1 {
		t.Fatalf("%d keys after the sweep, want 1", n)
	}
}

// TestMaxKeys: past the bound a new key goes through uncounted, an old one stays limited, and
// a key forgotten makes room.
func TestMaxKeys(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 2)
	for range 3 {
		take(m, "a")
	}
	take(m, "b")
	for range 10 {
		if !take(m, "c") {
			t.Fatal("a key past MaxKeys was refused")
		}
	}
	if m.Dropped() != 10 {
		t.Fatalf("Dropped = %d, want 10", m.Dropped())
	}
	if take(m, "a") {
		t.Fatal("a counted key was let through past its limit")
	}
	c.add(time.Minute)
	take(m, "c")
	if m.Len() != 1 {
		t.Fatalf("after a window, %d keys, want only c", m.Len())
	}
}

func TestUsage(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now, 0)
	take(m, "x:low")
	for range 3 {
		take(m, "x:full")
	}
	m.Take("x:half", 5, Limit{N: 10, Window: time.Hour})
	m.Take("y:other", 1, perMinute(3))
	got := m.Usage("x:")
	want := []Usage{
		{Key: "x:full", Limit: 3, Window: time.Minute, Used: 3, Reset: c.t.Add(time.Minute)},
		{Key: "x:half", Limit: 10, Window: time.Hour, Used: 5, Reset: c.t.Add(30 * time.Minute)},
		{Key: "x:low", Limit: 3, Window: time.Minute, Used: 1, Reset: c.t.Add(20 * time.Second)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Usage:\n got %v\nwant %v", got, want)
	}
	c.add(time.Second) // x:low's one event is partly forgotten: still counts as 1
	if u := m.Usage("x:low"); len(u) != 1 || u[0].Used != 1 {
		t.Fatalf("after 1s: %v", u)
	}
	c.add(time.Hour)
	if u := m.Usage(""); len(u) != 0 {
		t.Fatalf("after an hour: %v", u)
	}
}

// BenchmarkTake is the cost of one check, the policy path's unit: a few per message.
func BenchmarkTake(b *testing.B) {
	m := NewMemory(nil, 0)
	lim := Limit{N: 1 << 30, Window: time.Minute}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("msg:192.0.2.", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Take(keys[i%len(keys)], 1, lim)
			i++
		}
	})
}
