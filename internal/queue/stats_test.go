package queue

import (
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
