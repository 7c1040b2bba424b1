package queue

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/testutil"
)

// closeWithin closes q and fails the test if that takes longer than waitTimeout: a deadlock.
func closeWithin(t *testing.T, q *Queue) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- q.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		buf := make([]byte, 1<<20)
		t.Fatalf("Close did not return; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// TestCloseNoLeak checks that Close stops every goroutine the queue started, whether or not
// the context given to Run is ever cancelled.
func TestCloseNoLeak(t *testing.T) {
	for _, cancelFirst := range []bool{false, true} {
		before := runtime.NumGoroutine()
		dir := t.TempDir()
		fake := newFake(tempFail("slow.test"))
		opts := testOpts(fake)
		opts.MinBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
		q, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		q.Run(ctx)
		for i := range 10 {
			commitMsg(t, q, newEnv("a@fast.test", "b@slow.test"), bodyFor(i, 100))
		}
		waitFor(t, "some retries", func() bool { return fake.numCalls() > 30 })
		if cancelFirst {
			cancel()
		}
		closeWithin(t, q)
		cancel()
		waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
		// Work offered after Close is refused, not lost silently and not blocking.
		if _, err := q.NewMessage(); !errors.Is(err, ErrClosed) {
			t.Errorf("NewMessage after Close: %v", err)
		}
		q.Run(context.Background())
		if n := q.Flush("slow.test", false); n < 0 {
			t.Error("negative Flush")
		}
		waitFor(t, "goroutines of a Run after Close to end", func() bool { return runtime.NumGoroutine() <= before })
	}
}

// TestCloseWhileBusy closes the queue while sessions commit and workers deliver. Close must
// return; every Commit either succeeds (and the message survives) or says ErrClosed; nothing
// delivered comes back after a reopen.
func TestCloseWhileBusy(t *testing.T) {
	for round := range 3 {
		dir := t.TempDir()
		fake := newFake(func(ctx context.Context, addr string, n int) error {
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return delivery.Temporary("shutting down", ctx.Err())
			}
			if strings.HasPrefix(addr, "flaky") && n == 1 {
				return delivery.Temporary("flaky", nil)
			}
			return nil
		})
		opts := testOpts(fake)
		opts.MinBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
		opts.SegmentSize = 16 << 10
		opts.InlineMax = 2048
		q, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q.Run(ctx)
		var (
			mu        sync.Mutex
			committed []string
			wg        sync.WaitGroup
		)
		for s := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					w, err := q.NewMessage()
					if errors.Is(err, ErrClosed) {
						return
					} else if err != nil {
						t.Errorf("NewMessage: %v", err)
						return
					}
					w.Write(bodyFor(i, 100+(s*7919+i*104729)%4000))
					err = w.Commit(context.Background(), newEnv("flaky@example.test", "ok@example.test"))
					if errors.Is(err, ErrClosed) {
						return
					} else if err != nil {
						t.Errorf("Commit: %v", err)
						return
					}
					mu.Lock()
					committed = append(committed, w.ID())
					mu.Unlock()
				}
			})
		}
		waitFor(t, "traffic", func() bool { return fake.numCalls() > 200 })
		if round == 1 {
			cancel() // the server's shutdown order: stop delivery, then close
		}
		closeWithin(t, q)
		wg.Wait()

		delivered := fake.successes()
		q2, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range committed {
			q2.mu.Lock()
			e := q2.entries[id]
			q2.mu.Unlock()
			for r := range 2 {
				ok := len(delivered[rcptKey{id, r}]) > 0
				switch {
				case e == nil && !ok:
					t.Errorf("round %d: message %s recipient %d lost", round, id, r)
				case e != nil && ok && e.env.Rcpts[r].Status == "":
					t.Errorf("round %d: message %s recipient %d was delivered but is pending after reopen", round, id, r)
				}
			}
		}
		closeWithin(t, q2)
	}
}

// TestDelivererPanic checks that a deliverer's panic costs one attempt, not the server.
func TestDelivererPanic(t *testing.T) {
	fake := newFake(func(_ context.Context, _ string, n int) error {
		if n == 1 {
			panic("deliverer bug")
		}
		return nil
	})
	var logs testutil.SyncBuffer
	opts := testOpts(fake)
	opts.MinBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
	opts.Logger = debugLogger(&logs)
	q := openQueue(t, t.TempDir(), opts)
	id := commitMsg(t, q, newEnv("a@example.test"), bodyFor(1, 100))
	runQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	if n := fake.attempts(id, 0); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if !strings.Contains(logs.String(), "deliverer bug") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
}

// TestCloseWritesPendingState checks that Close writes the state records still waiting for the
// committer: a message delivered just before Close must not come back after a restart.
func TestCloseWritesPendingState(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		q, err := Open(dir, testOpts(newFake(nil)))
		if err != nil {
			t.Fatal(err)
		}
		id := commitMsg(t, q, newEnv("a@example.test", "b@example.test"), bodyFor(1, 100))
		// What a worker does after an attempt: the record goes to the committer unwaited.
		q.recordState(stateRecord{ID: id, Updates: []rcptUpdate{{I: 0, Status: envelope.Delivered}, {I: 1, Status: envelope.Failed, Err: "550 no"}}}, false)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		for _, s := range q.segs {
			if s.dirty {
				t.Errorf("round %d: segment %s not flushed by Close", round, s.path)
			}
		}
		q.mu.Unlock()
		if listed := listByID(t, dir); len(listed) != 0 {
			t.Fatalf("round %d: a finished message comes back after Close and reopen", round)
		}
	}
}
