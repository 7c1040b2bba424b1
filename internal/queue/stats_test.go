package queue

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	q := openQueue(t, t.TempDir(), testOpts(nil)) // not run: nothing is delivered
	if st := q.Stats(); st != (Stats{}) {
		t.Errorf("empty queue: %+v", st)
	}
	old := newEnv("a@remote.example")
	old.Received = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	commitMsg(t, q, old, []byte("x\r\n"))
	young := newEnv("b@remote.example")
	id := commitMsg(t, q, young, []byte("y\r\n"))
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Messages != 2 || st.Held != 1 || !st.Oldest.Equal(old.Received) {
		t.Errorf("Stats = %+v, want 2 messages, 1 held, oldest %v", st, old.Received)
	}
}

// walkStats is Stats the slow way: a walk over every entry.
func walkStats(q *Queue) Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Stats{Messages: len(q.entries)}
	for _, e := range q.entries {
		if e.env.Held {
			st.Held++
		}
		if r := e.env.Received; st.Oldest.IsZero() || r.Before(st.Oldest) {
			st.Oldest = r
		}
	}
	return st
}

// TestStatsKept: the counts the queue keeps say what a walk over the queue says, after each
// message in, hold, release and delete, and after a restart.
func TestStatsKept(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, testOpts(nil))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	check := func(step string) {
		t.Helper()
		if got, want := q.Stats(), walkStats(q); got != want {
			t.Errorf("after %s: Stats = %+v, a walk says %+v", step, got, want)
		}
	}
	for i, age := range []int{5, 9, 1, 9, 3} { // hours before base; two of the same age
		env := newEnv("a@remote.example")
		env.Received = base.Add(-time.Duration(age) * time.Hour)
		ids = append(ids, commitMsg(t, q, env, []byte("x\r\n")))
		check(fmt.Sprintf("commit %d", i))
	}
	steps := []struct {
		name string
		do   func(string) error
		id   int
	}{
		{"hold", q.Hold, 1}, {"hold", q.Hold, 2}, {"hold again", q.Hold, 2}, {"release", q.Release, 2},
		{"delete oldest", func(id string) error { return q.Delete(context.Background(), id) }, 3},
		{"delete held oldest", func(id string) error { return q.Delete(context.Background(), id) }, 1},
		{"delete young", func(id string) error { return q.Delete(context.Background(), id) }, 2},
	}
	for _, s := range steps {
		if err := s.do(ids[s.id]); err != nil {
			t.Fatalf("%s %d: %v", s.name, s.id, err)
		}
		check(fmt.Sprintf("%s %d", s.name, s.id))
	}
	if err := q.Hold(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, testOpts(nil))
	check("restart")
	if st := q.Stats(); st.Messages != 2 || st.Held != 1 || !st.Oldest.Equal(base.Add(-5*time.Hour)) {
		t.Errorf("after restart: %+v, want 2 messages, 1 held, oldest 5 hours before %v", st, base)
	}
	for _, id := range []string{ids[0], ids[4]} {
		if err := q.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	check("emptied")
	if st := q.Stats(); st != (Stats{}) {
		t.Errorf("empty queue: %+v", st)
	}
}

// BenchmarkStats: a scrape's Stats of a queue of 100,000 messages, against the walk it replaced.
func BenchmarkStats(b *testing.B) {
	q := openQueue(b, b.TempDir(), testOpts(nil))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q.mu.Lock()
	for i := range 100_000 {
		env := newEnv("a@remote.example")
		env.ID = fmt.Sprintf("bench%d", i)
		env.Received = base.Add(time.Duration(i) * time.Second)
		e := &entry{env: env, heapIdx: -1}
		q.entries[env.ID] = e
		q.stats.added(env)
	}
	q.mu.Unlock()
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			q.Stats()
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			walkStats(q)
		}
	})
	q.mu.Lock()
	clear(q.entries) // not committed: Close must not look for them
	q.mu.Unlock()
}
