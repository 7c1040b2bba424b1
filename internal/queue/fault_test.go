package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestWriteFault breaks the log or the body directory under a running queue. Commit must then
// fail (never panic, never answer nil for a message that is not durable), and work again once
// the fault is gone.
func TestWriteFault(t *testing.T) {
	// activeSegment swaps the active segment's file for f and returns a function that puts the
	// original back.
	swapFile := func(q *Queue, f safeio.File) (*segment, func()) {
		q.mu.Lock()
		defer q.mu.Unlock()
		seg := q.segs[len(q.segs)-1]
		orig := seg.f
		seg.f = f
		return seg, func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			seg.f = orig
			f.Close()
		}
	}
	tests := []struct {
		name string
		// inject breaks q; fix removes the fault; restore puts test doubles back before Close.
		inject func(t *testing.T, q *Queue) (fix, restore func())
		// failing is how many of the three commits made during the fault fail.
		failing int
		// unprivileged: the fault is a permission, which root ignores: the case runs as
		// nobody (see testutil.Unprivileged).
		unprivileged bool
	}{
		{
			name: "segment refuses writes",
			inject: func(t *testing.T, q *Queue) (func(), func()) {
				q.mu.Lock()
				path := q.segs[len(q.segs)-1].path
				q.mu.Unlock()
				ro, err := safeio.Open(safeio.OS, path) // reads work, writes and truncation fail
				if err != nil {
					t.Fatal(err)
				}
				_, restore := swapFile(q, ro)
				return func() {}, restore
			},
			failing: 1, // the queue moves on to a new segment
		},
		{
			name: "segment closed and no new segment possible",
			inject: func(t *testing.T, q *Queue) (func(), func()) {
				q.mu.Lock()
				seg := q.segs[len(q.segs)-1]
				q.mu.Unlock()
				closed, err := safeio.Open(safeio.OS, seg.path)
				if err != nil {
					t.Fatal(err)
				}
				closed.Close()
				blocker := filepath.Join(q.logDir(), segmentName(seg.seq+1))
				if err := os.Mkdir(blocker, 0o700); err != nil {
					t.Fatal(err)
				}
				_, restore := swapFile(q, closed)
				return func() {
					if err := os.Remove(blocker); err != nil {
						t.Fatal(err)
					}
				}, restore
			},
			failing: 3,
		},
		{
			name: "body directory gone",
			inject: func(t *testing.T, q *Queue) (func(), func()) {
				away := q.bodyDir() + ".away"
				if err := os.Rename(q.bodyDir(), away); err != nil {
					t.Fatal(err)
				}
				return func() {
					if err := os.Rename(away, q.bodyDir()); err != nil {
						t.Fatal(err)
					}
				}, func() {}
			},
			failing: 1, // only the message with a large body needs the directory
		},
		{
			name:         "log directory read-only",
			unprivileged: true,
			inject: func(t *testing.T, q *Queue) (func(), func()) {
				// Make the next commit need a new segment.
				q.mu.Lock()
				q.segs[len(q.segs)-1].size = q.opts.SegmentSize
				q.mu.Unlock()
				if err := os.Chmod(q.logDir(), 0o500); err != nil {
					t.Fatal(err)
				}
				return func() {
					if err := os.Chmod(q.logDir(), 0o700); err != nil {
						t.Fatal(err)
					}
				}, func() {}
			},
			failing: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.unprivileged && !testutil.Unprivileged(t) {
				return
			}
			dir := t.TempDir()
			opts := testOpts(newFake(nil))
			opts.InlineMax = 1024
			q, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			durable := make(map[string][]byte) // committed with a nil error
			var refused []string
			try := func(i int) error {
				body := bodyFor(i, 500+i%2*2000) // odd ones in a file of their own
				w, err := q.NewMessage()
				if err != nil {
					return err
				}
				if _, err := w.Write(body); err != nil {
					// A session gives up here; a later Commit must not store a partial body.
					if cerr := w.Commit(context.Background(), newEnv("a@example.test")); cerr == nil {
						t.Errorf("Commit after a failed Write succeeded")
						durable[w.ID()] = body
					}
					refused = append(refused, w.ID())
					return err
				}
				if err := w.Commit(context.Background(), newEnv("a@example.test")); err != nil {
					refused = append(refused, w.ID())
					return err
				}
				durable[w.ID()] = body
				return nil
			}
			for i := range 2 {
				if err := try(i); err != nil {
					t.Fatalf("commit before the fault: %v", err)
				}
			}
			fix, restore := tc.inject(t, q)
			failed := 0
			for i := 2; i < 5; i++ {
				if err := try(i); err != nil {
					failed++
					if errors.Is(err, ErrClosed) {
						t.Errorf("commit during the fault says the queue is closed: %v", err)
					}
				}
			}
			if failed != tc.failing {
				t.Errorf("%d of 3 commits failed during the fault, want %d", failed, tc.failing)
			}
			fix()
			for i := 5; i < 8; i++ {
				if err := try(i); err != nil {
					t.Errorf("commit %d after the fault was removed: %v", i, err)
				}
			}
			restore()
			if err := q.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			q2 := openQueue(t, dir, opts)
			for id, body := range durable {
				q2.mu.Lock()
				e := q2.entries[id]
				q2.mu.Unlock()
				if e == nil {
					t.Errorf("message %s got a nil Commit but is not in the queue", id)
					continue
				}
				if got := readBody(t, q2, id); !bytes.Equal(got, body) {
					t.Errorf("message %s has a different body", id)
				}
			}
			for _, id := range refused {
				q2.mu.Lock()
				e := q2.entries[id]
				q2.mu.Unlock()
				if e != nil {
					t.Errorf("refused message %s is queued", id)
				}
			}
			if n := q2.Len(); n != len(durable) {
				t.Errorf("Len = %d after reopen, want %d", n, len(durable))
			}
		})
	}
}
