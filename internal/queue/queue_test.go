package queue

import (
	"bytes"
	"context"
	"errors"
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

func TestCommitDeliver(t *testing.T) {
	tests := []struct {
		name  string
		rcpts []string
		size  int
	}{
		{"one recipient", []string{"a@example.test"}, 300},
		{"three recipients", []string{"a@example.test", "b@example.test", "c@other.test"}, 2000},
		{"empty body", []string{"a@example.test"}, 0},
		{"body with record magic", []string{"a@example.test"}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(nil)
			q := openQueue(t, t.TempDir(), testOpts(fake))
			body := bodyFor(1, max(tc.size, 0))
			if tc.size < 0 {
				// A body that looks like log records must come back as it went in.
				body = appendRecord([]byte("x"), recState, []byte(`{"id":"0123456789AB","u":[]}`))
			}
			env := newEnv(tc.rcpts...)
			id := commitMsg(t, q, env, body)
			if env.ID != id {
				t.Errorf("Commit set env.ID %q, want %q", env.ID, id)
			}
			if n := q.Len(); n != 1 {
				t.Errorf("Len after Commit = %d, want 1", n)
			}
			runQueue(t, q)
			waitFor(t, "delivery", func() bool { return q.Len() == 0 })
			calls := fake.allCalls()
			if len(calls) != len(tc.rcpts) {
				t.Fatalf("%d deliveries, want %d", len(calls), len(tc.rcpts))
			}
			seen := make(map[int]bool)
			for _, c := range calls {
				if seen[c.rcpt] {
					t.Errorf("recipient %d delivered twice", c.rcpt)
				}
				seen[c.rcpt] = true
				if err := sameEnvelope(env, c.env); err != nil {
					t.Errorf("deliverer got %v", err)
				}
				if !bytes.Equal(c.body, body) {
					t.Errorf("deliverer got body %q, want %q", c.body, body)
				}
			}
		})
	}
}

// TestSegmentsDropped checks through the file system that segments go once everything in them
// is delivered and a newer segment exists.
func TestSegmentsDropped(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(nil)
	opts := testOpts(fake)
	opts.SegmentSize = 4096
	q := openQueue(t, dir, opts)
	first := segmentFiles(t, dir)
	if len(first) != 1 {
		t.Fatalf("a new queue has segments %v, want one", first)
	}
	// Enough messages for several segments, all committed before delivery starts.
	for i := range 20 {
		commitMsg(t, q, newEnv("a@example.test"), bodyFor(i, 1000))
	}
	if segs := segmentFiles(t, dir); len(segs) < 4 {
		t.Fatalf("segments %v after 20 KB with SegmentSize 4096, want several", segs)
	}
	runQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	// One more message, delivered after the others, makes sure a newer segment exists and
	// triggers the cleanup of everything before it.
	commitMsg(t, q, newEnv("a@example.test"), bodyFor(99, 5000))
	waitFor(t, "old segments removed", func() bool {
		segs := segmentFiles(t, dir)
		return q.Len() == 0 && len(segs) <= 2 && !slices.Contains(segs, first[0])
	})
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Reopening moves to a fresh segment and drops the rest, which hold nothing pending.
	q2 := openQueue(t, dir, testOpts(fake))
	if segs := segmentFiles(t, dir); len(segs) != 1 {
		t.Errorf("after reopen segments are %v, want only the new active one", segs)
	}
	if n := q2.Len(); n != 0 {
		t.Errorf("Len after reopen = %d, want 0", n)
	}
	if n := len(fake.allCalls()); n != 21 {
		t.Errorf("%d deliveries, want 21", n)
	}
}

// TestReplay closes a queue with messages in every state and checks what comes back.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	const n = 24
	// First life: "down.test" is unreachable, everything else is delivered.
	fake1 := newFake(tempFail("down.test"))
	opts := testOpts(fake1)
	opts.InlineMax = 1024
	q := openQueue(t, dir, opts)
	type sent struct {
		env  *envelope.Envelope
		body []byte
		// pending are the recipients that must be delivered after the reopen.
		pending []int
	}
	var msgs []sent
	for i := range n {
		var env *envelope.Envelope
		var pending []int
		switch i % 3 {
		case 0: // all pending
			env = newEnv("a@down.test", "b@down.test")
			pending = []int{0, 1}
		case 1: // partly delivered
			env = newEnv("a@up.test", "b@down.test", "c@up.test")
			pending = []int{1}
		case 2: // all delivered: must not come back
			env = newEnv("a@up.test")
		}
		size := 200 + 97*i // some bodies go to files of their own
		body := bodyFor(i, size)
		commitMsg(t, q, env, body)
		msgs = append(msgs, sent{env.Clone(), body, pending})
	}
	cancel := runQueue(t, q)
	// Until every pending message's attempt is recorded, not merely started: a delivery the
	// shutdown cuts short is no attempt (runner.go), and the cancel below could come between
	// the deliverer's call and the outcome.
	waitFor(t, "first attempts", func() bool {
		for _, m := range msgs {
			for i := range m.env.Rcpts {
				if fake1.attempts(m.env.ID, i) == 0 {
					return false
				}
			}
		}
		for _, it := range q.Items() {
			if it.Envelope.Attempts == 0 {
				return false
			}
		}
		return true
	})
	// Close right away: the state records of the last attempts may not be flushed yet; Close
	// must write them.
	cancel()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	listed := listByID(t, dir)
	fake2 := newFake(nil)
	opts.Deliverer = fake2
	q2 := openQueue(t, dir, opts)
	wantLen := 0
	for _, m := range msgs {
		if len(m.pending) > 0 {
			wantLen++
		}
	}
	if got := q2.Len(); got != wantLen {
		t.Errorf("after reopen Len = %d, want %d", got, wantLen)
	}
	if len(listed) != wantLen {
		t.Errorf("List after Close has %d messages, want %d", len(listed), wantLen)
	}
	w, err := q2.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1].env.ID; w.ID() <= last {
		t.Errorf("id %s after reopen is not above the last one before, %s", w.ID(), last)
	}
	w.Abort()
	// Each message's attempt before the restart deferred it for an hour, and the restart
	// keeps it so: no burst of retries at every start.
	for _, it := range q2.Items() {
		if it.Envelope.Attempts != 1 || it.Next.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("%s after reopen: %d attempts, next at %v; want 1, in an hour", it.Envelope.ID, it.Envelope.Attempts, it.Next)
		}
	}
	runQueue(t, q2)
	q2.FlushAll()
	waitFor(t, "redelivery", func() bool { return q2.Len() == 0 })
	got := fake2.successes()
	for _, m := range msgs {
		for i := range m.env.Rcpts {
			calls := got[rcptKey{m.env.ID, i}]
			want := 0
			if slices.Contains(m.pending, i) {
				want = 1
			}
			if len(calls) != want {
				t.Errorf("message %s recipient %d delivered %d times after reopen, want %d", m.env.ID, i, len(calls), want)
				continue
			}
			if want == 0 {
				continue
			}
			if err := sameEnvelope(m.env, calls[0].env); err != nil {
				t.Errorf("message %s after reopen: %v", m.env.ID, err)
			}
			if !bytes.Equal(calls[0].body, m.body) {
				t.Errorf("message %s after reopen has body %q, want %q", m.env.ID, calls[0].body, m.body)
			}
			if le := listed[m.env.ID].Rcpts[i].LastError; le == "" {
				t.Errorf("List shows no last error for pending %s recipient %d", m.env.ID, i)
			}
		}
	}
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("body files %v left after everything was delivered", files)
	}
}

func TestLargeBody(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		external bool
	}{
		{"below InlineMax", 1000, false},
		{"at InlineMax", 1024, false},
		{"just above", 1025, true},
		{"large", 300 << 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fake := newFake(nil)
			opts := testOpts(fake)
			opts.InlineMax = 1024
			q := openQueue(t, dir, opts)
			body := bodyFor(7, tc.size)
			w, err := q.NewMessage()
			if err != nil {
				t.Fatal(err)
			}
			// Write in small pieces, as a session does.
			for p := body; len(p) > 0; {
				k := min(len(p), 333)
				if _, err := w.Write(p[:k]); err != nil {
					t.Fatal(err)
				}
				p = p[k:]
			}
			if err := w.Commit(context.Background(), newEnv("a@example.test")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "body", "v1."+w.ID())
			_, err = os.Stat(path)
			if tc.external != (err == nil) {
				t.Fatalf("body file %s: %v; want a file: %v", path, err, tc.external)
			}
			if got := readBody(t, q, w.ID()); !bytes.Equal(got, body) {
				t.Fatalf("stored body differs from the one written (%d octets, want %d)", len(got), len(body))
			}
			runQueue(t, q)
			waitFor(t, "delivery", func() bool { return q.Len() == 0 })
			if c := fake.allCalls(); len(c) != 1 || !bytes.Equal(c[0].body, body) {
				t.Fatalf("deliveries %d, or body differs", len(c))
			}
			waitFor(t, "body file removed", func() bool { return len(bodyFiles(t, dir)) == 0 })
		})
	}
}

func TestBodyFileCleanup(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(newFake(nil))
	opts.InlineMax = 1024
	q := openQueue(t, dir, opts)

	t.Run("abort removes the spilled file", func(t *testing.T) {
		w, err := q.NewMessage()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bodyFor(1, 3000)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "body", "v1."+w.ID())
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("no body file after writing past InlineMax: %v", err)
		}
		w.Abort()
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("body file still there after Abort: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("Write after Abort succeeded")
		}
		if err := w.Commit(context.Background(), newEnv("a@example.test")); err == nil {
			t.Error("Commit after Abort succeeded")
		}
	})
	t.Run("cancelled commit removes the spilled file", func(t *testing.T) {
		w, err := q.NewMessage()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bodyFor(1, 3000)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := w.Commit(ctx, newEnv("a@example.test")); !errors.Is(err, context.Canceled) {
			t.Errorf("Commit with a cancelled context: %v", err)
		}
		if files := bodyFiles(t, dir); len(files) != 0 {
			t.Errorf("body files %v after a refused Commit", files)
		}
	})

	// A committed external message, an orphan (a session that died before Commit) and a stray
	// file: Open keeps only the first.
	id := commitMsg(t, q, newEnv("a@example.test"), bodyFor(2, 5000))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1.0123456789AB", "v1.junk", "tmp"} {
		if err := os.WriteFile(filepath.Join(dir, "body", name), []byte("orphan"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	q2 := openQueue(t, dir, opts)
	if got, want := bodyFiles(t, dir), []string{"v1." + id}; !slices.Equal(got, want) {
		t.Errorf("body files after Open: %v, want %v", got, want)
	}
	if got := readBody(t, q2, id); !bytes.Equal(got, bodyFor(2, 5000)) {
		t.Error("body of the queued message changed")
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	fast := func(d delivery.Deliverer) Options {
		o := testOpts(d)
		o.MinBackoff, o.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
		return o
	}

	t.Run("temporary then success", func(t *testing.T) {
		t.Parallel()
		fake := newFake(func(_ context.Context, _ string, n int) error {
			if n == 1 {
				return delivery.Temporary("busy", nil)
			}
			return nil
		})
		q := openQueue(t, t.TempDir(), fast(fake))
		id := commitMsg(t, q, newEnv("a@example.test"), bodyFor(1, 100))
		beforeFirst := time.Now() // no attempt has started yet
		runQueue(t, q)
		waitFor(t, "delivery", func() bool { return q.Len() == 0 })
		calls := fake.allCalls()
		if len(calls) != 2 || calls[0].err == nil || calls[1].err != nil || calls[1].env.ID != id {
			t.Fatalf("calls %+v, want a failure then a success", calls)
		}
		// The retry waits at least MinBackoff less its 10% jitter after the first attempt
		// started, so after beforeFirst: a lower bound that no delay of the machine can break.
		// (When the first call was recorded is no bound: that may come late.)
		if gap := calls[1].at.Sub(beforeFirst); gap < 45*time.Millisecond {
			t.Errorf("retried %v after the first attempt, want at least MinBackoff less jitter", gap)
		}
		if le := calls[1].env.Rcpts[0].LastError; le == "" {
			t.Error("the second attempt does not see the first one's error")
		}
	})

	t.Run("permanent failure is final", func(t *testing.T) {
		t.Parallel()
		fake := newFake(func(_ context.Context, addr string, _ int) error {
			if addr == "gone@example.test" {
				return delivery.Permanentf(550, "1.1", "<%s>: user unknown", addr)
			}
			return nil
		})
		dir := t.TempDir()
		q := openQueue(t, dir, fast(fake))
		id := commitMsg(t, q, newEnv("gone@example.test", "ok@example.test"), bodyFor(1, 100))
		runQueue(t, q)
		waitFor(t, "the message to finish", func() bool { return q.Len() == 0 })
		if n := fake.attempts(id, 0); n != 1 {
			t.Errorf("permanently failed recipient tried %d times", n)
		}
		if n := fake.attempts(id, 1); n != 1 {
			t.Errorf("good recipient tried %d times", n)
		}
	})

	t.Run("only the failing recipient stays", func(t *testing.T) {
		t.Parallel()
		fake := newFake(tempFail("slow.test"))
		dir := t.TempDir()
		q := openQueue(t, dir, testOpts(fake)) // one-hour backoff: it stays
		env := newEnv("a@fast.test", "b@slow.test", "c@fast.test")
		id := commitMsg(t, q, env, bodyFor(1, 100))
		runQueue(t, q)
		var listed *envelope.Envelope
		waitFor(t, "List to show the outcome", func() bool {
			listed = listByID(t, dir)[id]
			return listed != nil && listed.Rcpts[0].Status != envelope.Pending &&
				listed.Rcpts[1].LastError != "" && listed.Rcpts[2].Status != envelope.Pending
		})
		want := []envelope.Status{envelope.Delivered, envelope.Pending, envelope.Delivered}
		for i, r := range listed.Rcpts {
			if r.Status != want[i] {
				t.Errorf("recipient %d listed as %q, want %q", i, r.Status, want[i])
			}
		}
		if le := listed.Rcpts[1].LastError; !bytes.Contains([]byte(le), []byte("slow.test is down")) {
			t.Errorf("LastError %q does not carry the deliverer's error", le)
		}
		if q.Len() != 1 {
			t.Errorf("Len = %d, want 1", q.Len())
		}
		// The next attempt goes to the pending recipient only.
		if n := q.Flush("slow.test", false); n != 1 {
			t.Errorf("Flush = %d, want 1", n)
		}
		waitFor(t, "second attempt", func() bool { return fake.attempts(id, 1) == 2 })
		if a, c := fake.attempts(id, 0), fake.attempts(id, 2); a != 1 || c != 1 {
			t.Errorf("delivered recipients tried again (%d, %d times)", a, c)
		}
	})

	t.Run("expired message fails", func(t *testing.T) {
		t.Parallel()
		fake := newFake(tempFail("slow.test"))
		opts := fast(fake)
		opts.MaxAge = time.Hour
		dir := t.TempDir()
		q := openQueue(t, dir, opts)
		env := newEnv("a@slow.test", "b@fast.test")
		env.Received = time.Now().Add(-2 * time.Hour)
		id := commitMsg(t, q, env, bodyFor(1, 100))
		runQueue(t, q)
		waitFor(t, "the message to finish", func() bool { return q.Len() == 0 })
		if n := fake.attempts(id, 0); n != 1 {
			t.Errorf("expired recipient tried %d times, want 1", n)
		}
		succ := fake.successes()
		bounces := 0
		for k, cs := range succ {
			if k.id == id {
				continue
			}
			// The expired recipient was bounced: a report from the null sender to the sender.
			env, body := cs[0].env, string(cs[0].body)
			if env.From != "" || env.Rcpts[0].Addr != "sender@example.org" ||
				!strings.Contains(body, "Action: failed") || !strings.Contains(body, "Status: 5.4.7") ||
				!strings.Contains(body, "Final-Recipient: rfc822; a@slow.test") {
				t.Errorf("unexpected delivery %+v:\n%s", env, body)
			}
			bounces++
		}
		if len(succ[rcptKey{id, 1}]) != 1 || bounces != 1 {
			t.Errorf("deliveries: %d to the live recipient, %d bounces; want 1 and 1", len(succ[rcptKey{id, 1}]), bounces)
		}
	})

	t.Run("backoff grows and is capped", func(t *testing.T) {
		q := &Queue{opts: Options{MinBackoff: time.Minute, MaxBackoff: time.Hour}}
		want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
		for i, w := range want {
			for range 20 {
				if d := q.backoff(i + 1); d > w || d < w-w/10 {
					t.Errorf("backoff(%d) = %v, want %v less up to 10%%", i+1, d, w)
				}
			}
		}
	})
}

func TestFlush(t *testing.T) {
	domains := []string{"example.test", "sub.example.test", "notexample.test", "other.test"}
	tests := []struct {
		flush string
		subs  bool     // ETRN @domain: subdomains too
		want  []string // domains whose message becomes due
	}{
		{"example.test", true, []string{"example.test", "sub.example.test"}},
		{"EXAMPLE.test", true, []string{"example.test", "sub.example.test"}},
		{"example.test", false, []string{"example.test"}},
		{"sub.example.test", true, []string{"sub.example.test"}},
		{"other.test", false, []string{"other.test"}},
		{"nowhere.test", true, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.flush, tc.subs), func(t *testing.T) {
			t.Parallel()
			// The first attempt at each recipient fails, later ones succeed.
			fake := newFake(func(_ context.Context, _ string, n int) error {
				if n == 1 {
					return delivery.Temporary("later", nil)
				}
				return nil
			})
			q := openQueue(t, t.TempDir(), testOpts(fake)) // one hour backoff
			ids := make(map[string]string)
			for _, d := range domains {
				ids[d] = commitMsg(t, q, newEnv("user@"+d), bodyFor(1, 100))
			}
			runQueue(t, q)
			waitFor(t, "first attempts deferred", func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return q.deferred.Len() == len(domains)
			})
			if n := q.Flush(tc.flush, tc.subs); n != len(tc.want) {
				t.Errorf("Flush(%q) = %d, want %d", tc.flush, n, len(tc.want))
			}
			waitFor(t, "flushed deliveries", func() bool { return q.Len() == len(domains)-len(tc.want) })
			for _, d := range domains {
				want := 1
				if slices.Contains(tc.want, d) {
					want = 2
				}
				if n := fake.attempts(ids[d], 0); n != want {
					t.Errorf("message to %s tried %d times, want %d", d, n, want)
				}
			}
			if n := q.Flush(tc.flush, tc.subs); n != 0 {
				t.Errorf("second Flush(%q) = %d, want 0", tc.flush, n)
			}
		})
	}
}

// TestConcurrentCommit commits from many sessions at once, as group commit sees them.
func TestConcurrentCommit(t *testing.T) {
	const sessions, perSession = 50, 100
	dir := t.TempDir()
	fake := newFake(nil)
	opts := testOpts(fake)
	opts.InlineMax = 4096
	opts.SegmentSize = 256 << 10 // rotations and segment drops while committing
	q := openQueue(t, dir, opts)
	runQueue(t, q)
	var (
		mu   sync.Mutex
		sent = make(map[string][]byte)
	)
	var wg sync.WaitGroup
	errc := make(chan error, sessions)
	for s := range sessions {
		wg.Go(func() {
			for i := range perSession {
				w, err := q.NewMessage()
				if err != nil {
					errc <- err
					return
				}
				body := bodyFor(s*perSession+i, 100+(s*perSession+i)%5000)
				w.Write(body)
				if err := w.Commit(context.Background(), newEnv("a@example.test", "b@example.test")); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				if _, dup := sent[w.ID()]; dup {
					errc <- fmt.Errorf("id %s given twice", w.ID())
				}
				sent[w.ID()] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	waitFor(t, "every delivery", func() bool { return q.Len() == 0 })
	got := fake.successes()
	if len(got) != 2*sessions*perSession {
		t.Errorf("%d recipients delivered, want %d", len(got), 2*sessions*perSession)
	}
	for id, body := range sent {
		for r := range 2 {
			calls := got[rcptKey{id, r}]
			if len(calls) != 1 {
				t.Fatalf("message %s recipient %d delivered %d times", id, r, len(calls))
			}
			if !bytes.Equal(calls[0].body, body) {
				t.Fatalf("message %s delivered with another body", id)
			}
		}
	}
	if files := bodyFiles(t, dir); len(files) != 0 {
		t.Errorf("body files left: %d", len(files))
	}
}
