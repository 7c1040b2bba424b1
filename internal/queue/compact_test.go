package queue

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

// messageRecords counts the message records of each id in the whole log of dir.
func messageRecords(t *testing.T, dir string) map[string]int {
	t.Helper()
	n := make(map[string]int)
	for _, name := range segmentFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, "log", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range scanSegment(t, name, data) {
			if r.typ == recMessage {
				n[r.id]++
			}
		}
	}
	return n
}

// segCount is the number of segments the queue has open.
func segCount(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.segs)
}

// segOf is the path of the segment holding id's message record.
func segOf(q *Queue, id string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[id]; e != nil {
		return e.seg.path
	}
	return ""
}

// smallQueue opens a queue in dir with 4 KiB segments, so that a few messages fill several.
func smallQueue(t *testing.T, dir string, d *fakeDeliverer) (*Queue, Options) {
	t.Helper()
	opts := testOpts(d)
	opts.SegmentSize = 4096
	return openQueue(t, dir, opts), opts
}

// heldMessage commits a message and holds it, and returns its id and body.
func heldMessage(t *testing.T, q *Queue) (string, []byte) {
	t.Helper()
	body := bodyFor(0, 1500)
	id := commitMsg(t, q, newEnv("held@example.test"), body)
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	return id, body
}

// fillDeleted commits and deletes messages until the log has n segments, without running q.
func fillDeleted(t *testing.T, q *Queue, n int) {
	t.Helper()
	for i := 1; segCount(q) < n; i++ {
		id := commitMsg(t, q, newEnv("x@example.test"), bodyFor(i, 1000))
		if err := q.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHeldMessageDoesNotPinLog: a held message is carried forward by compaction like a deferred
// one, so the segments behind it go while it waits; it is still held after a restart, once.
func TestHeldMessageDoesNotPinLog(t *testing.T) {
	dir := t.TempDir()
	q, opts := smallQueue(t, dir, newFake(nil))
	held, body := heldMessage(t, q)
	runQueue(t, q)
	first := segmentFiles(t, dir)[0]
	// Many segments' worth of mail, each message delivered at once.
	for i := 1; segCount(q) < 12; i++ {
		commitMsg(t, q, newEnv("x@example.test"), bodyFor(i, 1000))
	}
	waitFor(t, "traffic delivered", func() bool { return q.Len() == 1 })
	// The scheduler compacts once a second; the old segments must go.
	waitFor(t, "the old segments removed", func() bool {
		files := segmentFiles(t, dir)
		return !slices.Contains(files, first) && len(files) <= 3
	})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if n := messageRecords(t, dir)[held]; n != 1 {
		t.Errorf("%d message records for the held message, want 1", n)
	}
	q2 := openQueue(t, dir, opts)
	it, err := q2.Show(held)
	if err != nil || !it.Envelope.Held || it.Envelope.Rcpts[0].Status != envelope.Pending {
		t.Fatalf("after compaction and restart: %+v, %v; want held and pending", it, err)
	}
	if got := readBody(t, q2, held); !bytes.Equal(got, body) {
		t.Error("the held message's body changed")
	}
}

// TestCompactionMovesDueAndParked: messages due but not being delivered (no free worker) and
// messages parked on a busy destination are carried forward too, and are then delivered once.
func TestCompactionMovesDueAndParked(t *testing.T) {
	t.Run("due", func(t *testing.T) {
		dir := t.TempDir()
		q, opts := smallQueue(t, dir, newFake(nil)) // not running: every message stays due
		due := commitMsg(t, q, newEnv("due@example.test"), bodyFor(0, 1500))
		firstSeg := segOf(q, due)
		fillDeleted(t, q, 5)
		for range 5 {
			q.compact()
		}
		if files := segmentFiles(t, dir); slices.Contains(files, filepath.Base(firstSeg)) || len(files) > 3 {
			t.Fatalf("segments %v after compaction: the due message pins the log", files)
		}
		fake := newFake(nil)
		opts.Deliverer = fake
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q2 := openQueue(t, dir, opts)
		runQueue(t, q2)
		waitFor(t, "delivery after the restart", func() bool { return q2.Len() == 0 })
		if n := fake.attempts(due, 0); n != 1 {
			t.Errorf("%d deliveries of the moved message, want 1", n)
		}
	})
	t.Run("parked", func(t *testing.T) {
		dir := t.TempDir()
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		fake := newFake(func(_ context.Context, addr string, n int) error {
			if addr == "first@slow.test" {
				entered <- struct{}{}
				<-release
			}
			return nil
		})
		opts := testOpts(fake)
		opts.SegmentSize = 4096
		opts.Destination = func(env *envelope.Envelope) string { return envelope.Domain(env.Rcpts[0].Addr) }
		opts.DestinationConcurrency = 1
		q := openQueue(t, dir, opts)
		runQueue(t, q)
		commitMsg(t, q, newEnv("first@slow.test"), bodyFor(0, 500))
		<-entered
		parked := commitMsg(t, q, newEnv("second@slow.test"), bodyFor(1, 1500))
		waitFor(t, "the second message parked", func() bool { it, _ := q.Show(parked); return it.WaitingFor == "slow.test" })
		before := segOf(q, parked)
		for i := 2; segCount(q) < 4; i++ {
			commitMsg(t, q, newEnv("x@fast.test"), bodyFor(i, 1000))
		}
		q.compact()
		if after := segOf(q, parked); after == before {
			t.Errorf("the parked message was not carried forward (still in %s)", filepath.Base(after))
		}
		close(release)
		waitFor(t, "delivery", func() bool { return q.Len() == 0 })
		if n := fake.attempts(parked, 0); n != 1 {
			t.Errorf("%d deliveries of the parked message, want 1", n)
		}
		closeEmpty(t, q, dir)
	})
}

// TestHoldRacesCompaction holds and releases messages while compaction carries them forward:
// whatever the interleaving, the last word (held or not) survives a restart.
func TestHoldRacesCompaction(t *testing.T) {
	dir := t.TempDir()
	q, _ := smallQueue(t, dir, newFake(nil)) // not running: holds and releases only
	var ids []string
	for i := range 40 {
		ids = append(ids, commitMsg(t, q, newEnv("a@example.test"), bodyFor(i, 300)))
	}
	// Fresh segments for compaction to move the messages into.
	stop := compactLoop(q, func() {
		w, err := q.NewMessage()
		if err != nil {
			t.Error(err)
			return
		}
		w.Write(bodyFor(0, 1000))
		if err := w.Commit(context.Background(), newEnv("x@example.test")); err != nil {
			t.Error(err)
			return
		}
		if err := q.Delete(context.Background(), w.ID()); err != nil {
			t.Error(err)
		}
	})
	want := make(map[string]bool)
	for round := range 6 {
		for k, id := range ids {
			h := (k+round)%3 == 0
			var err error
			if h {
				err = q.Hold(id)
			} else {
				err = q.Release(id)
			}
			if err != nil {
				t.Fatal(err)
			}
			want[id] = h
		}
	}
	stop()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	listed := listByID(t, dir)
	for _, id := range ids {
		if env := listed[id]; env == nil || env.Held != want[id] {
			t.Errorf("%s after a restart: %+v, want held=%v", id, env, want[id])
		}
	}
	if n := len(listed); n != len(ids) {
		var extra []string
		for id := range listed {
			if !slices.Contains(ids, id) {
				extra = append(extra, id)
			}
		}
		t.Errorf("%d messages after the restart, want %d (extra: %s)", n, len(ids), strings.Join(extra, " "))
	}
}

// TestBodyReadDuringCompaction: a body being read (tern queue show) stays readable while
// compaction carries held messages forward and deletes the segments behind them.
func TestBodyReadDuringCompaction(t *testing.T) {
	q, _ := smallQueue(t, t.TempDir(), newFake(nil))
	held, body := heldMessage(t, q)
	first := segOf(q, held)
	rc, err := q.Body(held)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	fillDeleted(t, q, 5)
	q.compact()
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the body while compaction runs: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, body) {
		t.Error("the body read differs")
	}
	rc.Close()
	q.compact()
	if after := segOf(q, held); after == first {
		t.Errorf("the held message stays in %s once its reader is closed", filepath.Base(first))
	}
}
