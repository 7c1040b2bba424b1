package queue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestSnapshot takes a snapshot while messages are committed and delivered, over several
// segments with compaction and external bodies, copies it, and opens the copy: every message
// committed before the snapshot and still waiting is there with its body, none that was
// delivered before it comes back, and the replay logs no damage.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	d := newFake(tempFail("down.example"))
	opts := testOpts(d)
	opts.InlineMax = 512 // every other body in its own file
	opts.SegmentSize = 8 << 10
	q := openQueue(t, filepath.Join(dir, "queue"), opts)
	runQueue(t, q)

	var mu sync.Mutex
	waiting := map[string][]byte{} // committed before the snapshot, for down.example
	commit := func(i int, rcpt string) string {
		body := bodyFor(i, 300+(i%2)*700)
		id := commitMsg(t, q, newEnv(rcpt), body)
		if strings.HasSuffix(rcpt, "@down.example") {
			mu.Lock()
			waiting[id] = body
			mu.Unlock()
		}
		return id
	}
	var delivered []string
	for i := range 60 {
		commit(i, fmt.Sprintf("w%d@down.example", i))
		delivered = append(delivered, commit(i, fmt.Sprintf("d%d@up.example", i)))
	}
	// Delivered, and forgotten: the final state records are on their way to the committer
	// (not waited for: at least once). One more durable commit behind them, through the same
	// queue of appends, makes them part of the log the snapshot copies.
	waitFor(t, "the up.example messages delivered", func() bool { return len(d.successes()) == 60 && q.Len() == 60 })
	commit(60, "marker@down.example")

	// Commits go on while the snapshot is taken; those that end after it may or may not be in it.
	stop := make(chan struct{})
	during := make(chan struct{})
	go func() {
		defer close(during)
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w, err := q.NewMessage()
			if err != nil {
				return
			}
			if _, err := w.Write(bodyFor(i, 800)); err != nil {
				return
			}
			env := newEnv(fmt.Sprintf("late%d@down.example", i))
			env.Size = 800
			_ = w.Commit(t.Context(), env) // may fail once the queue closes
		}
	}()
	if err := os.Mkdir(filepath.Join(dir, "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	snap, err := q.Snapshot(filepath.Join(dir, "snap"))
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-during
	if len(snap.Sizes) < 2 {
		t.Errorf("the snapshot has %d segments; the test wants several", len(snap.Sizes))
	}
	if err := snap.CopyTo(filepath.Join(dir, "copy")); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	var logs testutil.SyncBuffer
	copts := testOpts(d)
	copts.Logger = debugLogger(&logs)
	c := openQueue(t, filepath.Join(dir, "copy"), copts)
	got := listByID(t, filepath.Join(dir, "copy"))
	for id, body := range waiting {
		if got[id] == nil {
			t.Errorf("message %s, committed before the snapshot, is not in the copy", id)
			continue
		}
		if b := readBody(t, c, id); !bytes.Equal(b, body) {
			t.Errorf("message %s: body differs in the copy", id)
		}
	}
	for _, id := range delivered {
		if got[id] != nil {
			t.Errorf("message %s, delivered before the snapshot, is in the copy", id)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("replay of the copy logged errors:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "snap", "log")); err != nil {
		t.Errorf("the snapshot is gone: %v", err) // the caller removes it
	}
}

// BenchmarkSnapshot measures a snapshot of a queue of 1000 messages with their bodies in
// files: the time the queue's lock is held (one link per file).
func BenchmarkSnapshot(b *testing.B) {
	dir := b.TempDir()
	opts := testOpts(newFake(nil))
	opts.InlineMax = 1
	q := openQueue(b, filepath.Join(dir, "queue"), opts)
	for i := range 1000 {
		commitMsg(b, q, newEnv(fmt.Sprintf("r%d@down.example", i)), bodyFor(i, 200))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		snap := filepath.Join(dir, fmt.Sprint("snap", i))
		if err := os.Mkdir(snap, 0o700); err != nil {
			b.Fatal(err)
		}
		if _, err := q.Snapshot(snap); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(snap); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestSnapshotHoldsBodyRemoval finishes a message while a snapshot links the body files: its
// body file stays until the snapshot ends, then goes.
func TestSnapshotHoldsBodyRemoval(t *testing.T) {
	dir := t.TempDir()
	d := newFake(nil)
	opts := testOpts(d)
	opts.InlineMax = 1
	q := openQueue(t, filepath.Join(dir, "queue"), opts)
	id := commitMsg(t, q, newEnv("r@up.example"), bodyFor(1, 100))
	body := filepath.Join(q.bodyDir(), bodyName(id))
	snap := filepath.Join(dir, "snap")
	for _, sub := range []string{"log", "body"} {
		if err := os.MkdirAll(filepath.Join(snap, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.linkSegments(snap, map[string]int64{}); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	waitFor(t, "the delivery", func() bool { return len(d.successes()) == 1 && q.Len() == 0 })
	if _, err := os.Stat(body); err != nil {
		t.Fatalf("body file removed during the snapshot: %v", err)
	}
	q.endSnapshot()
	if _, err := os.Stat(body); !os.IsNotExist(err) {
		t.Fatalf("body file still there after the snapshot: %v", err)
	}
}
