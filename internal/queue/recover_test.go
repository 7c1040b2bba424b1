package queue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// TestCompaction checks that a message pinning the oldest segment is copied forward with its
// recipient state, that the old segments then go, and that a restart sees it exactly once.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(tempFail("slow.test"))
	opts := testOpts(fake) // one hour backoff: the stuck message stays deferred
	opts.SegmentSize = 4096
	opts.InlineMax = 2048
	q := openQueue(t, dir, opts)
	runQueue(t, q)

	stuckEnv := newEnv("a@fast.test", "b@slow.test", "c@fast.test")
	stuckBody := bodyFor(0, 1500)
	stuck := commitMsg(t, q, stuckEnv, stuckBody)
	bigEnv := newEnv("a@slow.test")
	bigBody := bodyFor(1, 3000) // in a file of its own
	big := commitMsg(t, q, bigEnv, bigBody)
	waitFor(t, "first attempts", func() bool { return fake.attempts(stuck, 1) == 1 && fake.attempts(big, 0) == 1 })
	firstSeg := segmentFiles(t, dir)[0]

	// Traffic that is delivered at once moves the log on.
	for i := 0; ; i++ {
		commitMsg(t, q, newEnv("x@fast.test"), bodyFor(i+2, 1000))
		q.mu.Lock()
		n := len(q.segs)
		q.mu.Unlock()
		if n >= 4 {
			break
		}
	}
	waitFor(t, "traffic delivered", func() bool { return q.Len() == 2 })

	q.compact()
	q.mu.Lock()
	e := q.entries[stuck]
	moved := e != nil && filepath.Base(e.seg.path) != firstSeg
	q.mu.Unlock()
	if !moved {
		t.Fatal("compact left the message in the oldest segment")
	}
	waitFor(t, "the first segment removed", func() bool { return !slices.Contains(segmentFiles(t, dir), firstSeg) })
	if got := readBody(t, q, stuck); !bytes.Equal(got, stuckBody) {
		t.Fatal("the copied message has a different body")
	}
	if got := readBody(t, q, big); !bytes.Equal(got, bigBody) {
		t.Fatal("the copied external message has a different body")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	listed := listByID(t, dir)
	if len(listed) != 2 || listed[stuck] == nil || listed[big] == nil {
		t.Fatalf("List after compaction: %v", listed)
	}
	wantStatus := []envelope.Status{envelope.Delivered, envelope.Pending, envelope.Delivered}
	for i, r := range listed[stuck].Rcpts {
		if r.Status != wantStatus[i] {
			t.Errorf("recipient %d is %q after compaction and restart, want %q", i, r.Status, wantStatus[i])
		}
	}
	if listed[stuck].Rcpts[1].LastError == "" {
		t.Error("the pending recipient lost its last error")
	}
	// Exactly one message record per message in the whole log.
	if records := messageRecords(t, dir); records[stuck] != 1 || records[big] != 1 {
		t.Errorf("message records in the log: %v, want one each for %s and %s", records, stuck, big)
	}

	fake2 := newFake(nil)
	opts.Deliverer = fake2
	q2 := openQueue(t, dir, opts)
	runQueue(t, q2)
	// The copy carried the retry time forward: stuck is still deferred.
	if it, err := q2.Show(stuck); err != nil || it.Next.IsZero() || it.Envelope.Attempts == 0 {
		t.Errorf("%s after compaction and restart: %+v, %v; want deferred", stuck, it, err)
	}
	q2.FlushAll()
	waitFor(t, "delivery after restart", func() bool { return q2.Len() == 0 })
	got := fake2.successes()
	if len(got) != 2 || len(got[rcptKey{stuck, 1}]) != 1 || len(got[rcptKey{big, 0}]) != 1 {
		t.Errorf("deliveries after restart: %v", got)
	}
	if c := got[rcptKey{stuck, 1}]; len(c) == 1 && !bytes.Equal(c[0].body, stuckBody) {
		t.Error("body changed by compaction")
	}
	if c := got[rcptKey{big, 0}]; len(c) == 1 && !bytes.Equal(c[0].body, bigBody) {
		t.Error("external body changed by compaction")
	}
}

// TestCompactionRacesAttempts runs compaction while the messages it moves are being attempted.
// Whatever the interleaving, a restart must not bring back a recipient that was delivered.
func TestCompactionRacesAttempts(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(func(_ context.Context, addr string, n int) error {
		if strings.HasPrefix(addr, "later") && n < 3 {
			return tempFail("example.test")(context.Background(), addr, n)
		}
		return nil
	})
	opts := testOpts(fake)
	opts.MinBackoff, opts.MaxBackoff = 1, 1 // retried at once
	opts.SegmentSize = 4096
	q := openQueue(t, dir, opts)
	runQueue(t, q)
	stop := compactLoop(q, nil)
	for i := range 200 {
		commitMsg(t, q, newEnv("later@example.test", "now@example.test"), bodyFor(i, 300))
	}
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	stop()
	closeEmpty(t, q, dir)
}

// TestSegmentPinnedAtWrite checks that a message record counts as live in its segment as soon
// as the committer answers: between that answer and the moment Commit indexes the message, the
// log may move on, and the segment must not be deleted under the message.
func TestSegmentPinnedAtWrite(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(newFake(nil))
	opts.SegmentSize = 4096
	q := openQueue(t, dir, opts)
	env := newEnv("a@example.test")
	env.ID = q.ids.next()
	prefix, err := messagePrefix(env, nil, bodyInline)
	if err != nil {
		t.Fatal(err)
	}
	res := q.append(&appendReq{rec: appendRecord(nil, recMessage, prefix, []byte("body")), sync: true, msg: true})
	if res.err != nil {
		t.Fatal(res.err)
	}
	// Not indexed yet; other records fill the segment and the next ones.
	filler := appendRecord(nil, recState, []byte(`{"id":"0123456789AB","u":[]}`), make([]byte, 5000))
	for range 3 {
		if r := q.append(&appendReq{rec: filler, sync: true}); r.err != nil {
			t.Fatal(r.err)
		}
	}
	q.mu.Lock()
	q.dropSegments()
	n := len(q.segs)
	q.mu.Unlock()
	if _, err := os.Stat(res.seg.path); err != nil || n < 3 {
		t.Fatalf("the segment of a message record being committed was removed (%d segments): %v", n, err)
	}
}

// TestRetryTimeSurvivesRestart: a message deferred by a temporary failure keeps its attempt
// count and its next attempt across a restart (List shows them with the server stopped too),
// with the wait capped by the longest backoff of the options it is reopened with; a message
// never tried is due at once.
func TestRetryTimeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(tempFail("example.test"))
	opts := testOpts(fake) // an hour between attempts
	q := openQueue(t, dir, opts)
	runQueue(t, q)
	tried := commitMsg(t, q, newEnv("bob@example.test"), []byte("Subject: a\r\n\r\nx\r\n"))
	waitFor(t, "the first attempt", func() bool {
		it, err := q.Show(tried)
		return err == nil && it.Envelope.Attempts == 1 && !it.Next.IsZero()
	})
	before, _ := q.Show(tried)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	env := listByID(t, dir)[tried]
	if env == nil || env.Attempts != 1 || !env.NextAttempt.Equal(before.Next.Truncate(time.Millisecond)) {
		t.Fatalf("List with the queue closed: %+v, want 1 attempt, next at %v", env, before.Next)
	}

	fake2 := newFake(tempFail("example.test"))
	q2 := openQueue(t, dir, testOpts(fake2))
	runQueue(t, q2)
	fresh := commitMsg(t, q2, newEnv("carol@example.test"), []byte("Subject: b\r\n\r\ny\r\n"))
	waitFor(t, "the fresh message's attempt", func() bool { return fake2.attempts(fresh, 0) == 1 })
	if it, err := q2.Show(tried); err != nil || it.Envelope.Attempts != 1 || !it.Next.Equal(env.NextAttempt) {
		t.Errorf("after reopen: %+v, %v; want 1 attempt, next at %v", it, err, env.NextAttempt)
	}
	if n := fake2.attempts(tried, 0); n != 0 {
		t.Errorf("the deferred message was tried %d times at the restart", n)
	}
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with a one-second schedule: both wait a second at most, then go.
	fake3 := newFake(nil)
	opts3 := testOpts(fake3)
	opts3.RetrySchedule = []time.Duration{time.Second}
	q3 := openQueue(t, dir, opts3)
	for _, id := range []string{tried, fresh} {
		if it, err := q3.Show(id); err != nil || it.Next.After(time.Now().Add(time.Second)) {
			t.Errorf("%s with a shorter schedule: %+v, %v; want next within a second", id, it, err)
		}
	}
	runQueue(t, q3)
	waitFor(t, "delivery", func() bool { return q3.Len() == 0 })
	if n := fake3.attempts(tried, 0); n != 1 {
		t.Errorf("%d attempts after the wait, want 1", n)
	}
}

// TestOnFlush: every way of asking for delivery now tells OnFlush first, with the domain for
// Flush (ETRN) and "" (every destination) for the admin's FlushAll and FlushID.
func TestOnFlush(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	opts := testOpts(newFake(tempFail("example.test")))
	opts.OnFlush = func(domain string, subdomains bool) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%q %v", domain, subdomains))
	}
	q := openQueue(t, t.TempDir(), opts)
	id := commitMsg(t, q, newEnv("bob@example.test"), []byte("Subject: a\r\n\r\nx\r\n"))
	q.Flush("Example.TEST", false)
	q.Flush("test", true)
	q.FlushAll()
	if err := q.FlushID(id); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`"example.test" false`, `"test" true`, `"" false`, `"" false`}
	if !slices.Equal(calls, want) {
		t.Errorf("OnFlush calls %q, want %q", calls, want)
	}
}

// TestShutdownIsNoAttempt: deliveries cut short by shutdown leave no deferral behind: after a
// restart the message is due at once, its attempt count unchanged.
func TestShutdownIsNoAttempt(t *testing.T) {
	dir := t.TempDir()
	started := make(chan struct{}, 1)
	fake := newFake(func(ctx context.Context, _ string, _ int) error {
		started <- struct{}{}
		<-ctx.Done()
		return delivery.Temporary("interrupted", ctx.Err())
	})
	q := openQueue(t, dir, testOpts(fake)) // an hour between attempts
	cancel := runQueue(t, q)
	id := commitMsg(t, q, newEnv("bob@example.test"), []byte("Subject: a\r\n\r\nx\r\n"))
	<-started
	cancel()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if env := listByID(t, dir)[id]; env == nil || env.Attempts != 0 || !env.NextAttempt.IsZero() || env.Rcpts[0].LastError != "" {
		t.Fatalf("after shutdown: %+v, want pending with no attempt recorded", env)
	}
	fake2 := newFake(nil)
	q2 := openQueue(t, dir, testOpts(fake2))
	runQueue(t, q2)
	waitFor(t, "delivery after the restart", func() bool { return q2.Len() == 0 })
}

// TestFlushSurvivesRestart: a flush made with the server stopped (the queue opened, flushed
// and closed without running) holds at the next start.
func TestFlushSurvivesRestart(t *testing.T) {
	for _, flush := range []struct {
		name string
		do   func(q *Queue, id string) error
	}{
		{"FlushID", func(q *Queue, id string) error { return q.FlushID(id) }},
		{"FlushAll", func(q *Queue, _ string) error { q.FlushAll(); return nil }},
		{"Flush(domain)", func(q *Queue, _ string) error { q.Flush("example.test", false); return nil }},
	} {
		t.Run(flush.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := newFake(tempFail("example.test"))
			q := openQueue(t, dir, testOpts(fake)) // an hour between attempts
			cancel := runQueue(t, q)
			id := commitMsg(t, q, newEnv("bob@example.test"), []byte("Subject: a\r\n\r\nx\r\n"))
			waitFor(t, "the first attempt", func() bool { it, _ := q.Show(id); return !it.Next.IsZero() })
			cancel()
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}

			stopped := openQueue(t, dir, testOpts(newFake(nil)))
			if err := flush.do(stopped, id); err != nil {
				t.Fatal(err)
			}
			if err := stopped.Close(); err != nil {
				t.Fatal(err)
			}
			if env := listByID(t, dir)[id]; env == nil || !env.NextAttempt.IsZero() || env.Attempts != 1 {
				t.Fatalf("after the flush: %+v, want due, 1 attempt", env)
			}

			fake2 := newFake(nil)
			q2 := openQueue(t, dir, testOpts(fake2))
			runQueue(t, q2)
			waitFor(t, "delivery at the start", func() bool { return q2.Len() == 0 })
		})
	}
}

// TestReleaseSurvivesRestart: a message deferred, then held, then released with the server
// stopped is due at the next start, as a release says.
func TestReleaseSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, testOpts(newFake(tempFail("example.test"))))
	cancel := runQueue(t, q)
	id := commitMsg(t, q, newEnv("bob@example.test"), []byte("Subject: a\r\n\r\nx\r\n"))
	waitFor(t, "the first attempt", func() bool { it, _ := q.Show(id); return !it.Next.IsZero() })
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := openQueue(t, dir, testOpts(newFake(nil)))
	if err := stopped.Release(id); err != nil {
		t.Fatal(err)
	}
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openQueue(t, dir, testOpts(newFake(nil)))
	runQueue(t, q2)
	waitFor(t, "delivery at the start", func() bool { return q2.Len() == 0 })
}
