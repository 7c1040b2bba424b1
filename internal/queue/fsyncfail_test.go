package queue_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
	"github.com/tern-mail/tern/internal/testutil"
)

// recorder is a deliverer that accepts everything and keeps what it got.
type recorder struct {
	mu  sync.Mutex
	got map[string][]byte // by queue id
}

func (r *recorder) Deliver(_ context.Context, env *envelope.Envelope, _ int, body io.Reader) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[env.ID] = b
	return nil
}

// deliverEverything opens the queue on fsys, delivers all it holds to a recorder and returns
// what was delivered and what the queue logged.
func deliverEverything(t *testing.T, fsys safeio.FS) (map[string][]byte, string) {
	t.Helper()
	var logs testutil.SyncBuffer
	rec := &recorder{got: map[string][]byte{}}
	opts := plOptions(fsys, &logs)
	opts.Deliverer, opts.Batch = rec, nil
	q, err := queue.Open(plSpool, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.Run(ctx)
	deadline := time.Now().Add(plDeadline)
	for q.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages not delivered", q.Len())
		}
		time.Sleep(time.Millisecond)
	}
	if err := q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.got, logs.String()
}

// TestSyncFailure makes a step of a commit fail, as a failing disk does, once (twice where
// the second fault hits what the queue does about the first). The commit must fail (the
// session answers 451, never 250); later commits must succeed, none of them in a segment
// whose flush failed (after a failed fdatasync the kernel may have dropped the data: nothing
// written there can be trusted); and after a restart, every acknowledged message is delivered
// whole, the refused one never, and recovery reports nothing lost. After a crash instead of a
// clean restart, the refused message may come back (a duplicate of the client's retry), but
// whole.
func TestSyncFailure(t *testing.T) {
	inLog := func(op crashfs.Op) bool { return path.Dir(op.Path) == plSpool+"/log" }
	logSync := func(op crashfs.Op) error {
		return errIf(op.Kind == crashfs.OpDatasync && inLog(op), syscall.EIO)
	}
	tests := []struct {
		name   string
		fail   func(op crashfs.Op) error // the fault: an error for the operations it hits
		faults int                       // how many operations it hits; default 1
		big    bool                      // the refused message has a body file
		// seals: the fault must seal the segment (no record written to it afterwards).
		seals bool
		// mayReturn: the second fault may keep the queue from recording the refusal, so the
		// refused message may come back after a restart (whole).
		mayReturn bool
	}{
		{name: "log fdatasync, inline body", seals: true, fail: logSync},
		{name: "log fdatasync, body file", big: true, seals: true, fail: logSync},
		{name: "log fdatasync, then the new segment's directory fsync", faults: 2, seals: true, mayReturn: true, fail: func(op crashfs.Op) error {
			return errIf(op.Kind == crashfs.OpDatasync && inLog(op) || op.Kind == crashfs.OpSyncDir && op.Path == plSpool+"/log", syscall.EIO)
		}},
		{name: "log fdatasync twice", big: true, faults: 2, seals: true, mayReturn: true, fail: logSync},
		{name: "log write, disk full midway", fail: func(op crashfs.Op) error {
			return errIf(op.Kind == crashfs.OpWrite && inLog(op), crashfs.ShortWrite(int(op.Len/2), syscall.ENOSPC))
		}},
		{name: "log write midway and its cut-back", big: true, faults: 2, seals: true, fail: func(op crashfs.Op) error {
			if op.Kind == crashfs.OpWrite && inLog(op) {
				return crashfs.ShortWrite(int(op.Len/2), syscall.EIO)
			}
			return errIf(op.Kind == crashfs.OpTruncate && inLog(op), syscall.EIO)
		}},
		{name: "body file fsync", big: true, fail: func(op crashfs.Op) error {
			return errIf(op.Kind == crashfs.OpSync && path.Dir(op.Path) == plSpool+"/body", syscall.EIO)
		}},
		{name: "body file write, disk full", big: true, fail: func(op crashfs.Op) error {
			return errIf(op.Kind == crashfs.OpWrite && path.Dir(op.Path) == plSpool+"/body", syscall.ENOSPC)
		}},
		{name: "body directory fsync", big: true, fail: func(op crashfs.Op) error {
			return errIf(op.Kind == crashfs.OpSyncDir && op.Path == plSpool+"/body", syscall.EIO)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := crashfs.New()
			var (
				mu       sync.Mutex
				budget   int                  // faults left to inject
				failed   = map[string]int64{} // segment -> step of its failed flush or cut-back
				trusting []string             // records written to a segment after its failure
			)
			f.Inject(func(op crashfs.Op) error {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case op.Kind == crashfs.OpRemove:
					delete(failed, op.Path) // a new file may get the name
				case op.Kind == crashfs.OpWrite && failed[op.Path] > 0:
					trusting = append(trusting, op.String())
				}
				if budget == 0 {
					return nil
				}
				err := tc.fail(op)
				if err != nil {
					budget--
					if tc.seals && inLog(op) && (op.Kind == crashfs.OpDatasync || op.Kind == crashfs.OpTruncate) {
						failed[op.Path] = op.Step
					}
				}
				return err
			})
			var logs testutil.SyncBuffer
			q, err := queue.Open(plSpool, plOptions(f, &logs))
			if err != nil {
				t.Fatal(err)
			}
			msgs := plWorkload(10)
			want := map[string][]byte{}
			commitOK := func(m *plMsg) {
				t.Helper()
				if err := commit(q, m); err != nil {
					t.Fatalf("commit of message %d: %v", m.n, err)
				}
				want[m.id] = m.body
			}
			commitOK(msgs[0]) // inline
			commitOK(msgs[1]) // body file
			mu.Lock()
			budget = max(tc.faults, 1)
			mu.Unlock()
			first := msgs[3] // 900 octets: inline
			if tc.big {
				first = msgs[2] // 5000: a body file
			}
			if err := commit(q, first); err == nil {
				t.Fatal("the commit under the fault succeeded")
			}
			refused := []*plMsg{first}
			// What a second fault hits depends on the queue's way of coping with the first:
			// commit until one succeeds.
			for _, m := range msgs[5:8] {
				if err := commit(q, m); err == nil {
					want[m.id] = m.body
					break
				}
				refused = append(refused, m)
			}
			mu.Lock()
			budget = 0
			mu.Unlock()
			commitOK(msgs[8]) // inline
			commitOK(msgs[9]) // body file
			if err := q.Close(); err != nil {
				t.Logf("Close: %v", err)
			}
			mu.Lock()
			if tc.seals && len(failed) == 0 {
				t.Error("no segment failed")
			}
			if len(trusting) > 0 {
				t.Errorf("records written to a segment after its flush failed: %q", trusting)
			}
			mu.Unlock()
			if s := logs.String(); tc.seals && !strings.Contains(s, "sealing the segment") {
				t.Errorf("no segment sealed; log:\n%s", s)
			}

			// A crash now (only what is durable, then random parts of the rest), and a clean
			// restart.
			for seed := range uint64(9) {
				fsys, what := f.Snapshot(nil), "after a crash"
				switch {
				case seed == 8:
					fsys, what = f, "after a restart"
				case seed > 0:
					fsys, what = f.Snapshot(rand.New(rand.NewPCG(seed, 5))), fmt.Sprintf("after a crash (random seed %d)", seed)
				}
				got, logged := deliverEverything(t, fsys)
				acked, refusal := checkDelivered(want, refused, got, logged, seed < 8 || tc.mayReturn)
				for _, p := range acked {
					t.Errorf("%s: %s", what, p)
				}
				for _, p := range refusal {
					t.Errorf("%s: %s", what, p)
				}
			}
		})
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// checkDelivered reports what is wrong with a delivery after a restart: acknowledged messages
// lost or damaged; and the refused message delivered (damaged, or at all unless mayReturn) or
// errors logged (what the refused message's half state makes recovery say).
func checkDelivered(want map[string][]byte, refused []*plMsg, got map[string][]byte, logged string, mayReturn bool) (acked, refusal []string) {
	for id, body := range want {
		if !bytes.Equal(got[id], body) {
			acked = append(acked, fmt.Sprintf("acknowledged message %s delivered as %d octets, want %d", id, len(got[id]), len(body)))
		}
	}
	for _, m := range refused {
		if b, ok := got[m.id]; ok && (!mayReturn || !bytes.Equal(b, m.body)) {
			refusal = append(refusal, fmt.Sprintf("refused message %s delivered (%d octets of %d)", m.id, len(b), len(m.body)))
		}
	}
	if strings.Contains(logged, "level=ERROR") {
		refusal = append(refusal, "errors logged:\n"+logged)
	}
	return acked, refusal
}

// TestSyncFailureGroupCommit fails one fdatasync of the log shared by several sessions' commits
// (group commit): every commit whose record was in the failed batch must fail, so that a crash
// right after loses no acknowledged message. To get a batch of several, the flush before the
// failing one waits until every session is inside Commit.
func TestSyncFailureGroupCommit(t *testing.T) {
	const sessions = 4
	var msgs []*plMsg // inline bodies only: a Commit then needs no file operation of its own
	for _, m := range plWorkload(40) {
		if len(m.body) <= plInline {
			msgs = append(msgs, m)
		}
	}
	var (
		logSyncs atomic.Int64
		inCommit atomic.Int64
		entered  = make(chan struct{}, len(msgs))
	)
	f := crashfs.New()
	f.Inject(func(op crashfs.Op) error {
		if op.Kind != crashfs.OpDatasync || path.Dir(op.Path) != plSpool+"/log" {
			return nil
		}
		switch logSyncs.Add(1) {
		case 3:
			// Hold the committer (and the file system) until the other sessions wait on
			// the next batch. A bound keeps a mistake from hanging the test.
			for deadline := time.After(plDeadline); inCommit.Load() < sessions; {
				select {
				case <-entered:
				case <-deadline:
					return nil
				}
			}
		case 4:
			return syscall.EIO
		}
		return nil
	})
	var logs testutil.SyncBuffer
	q, err := queue.Open(plSpool, plOptions(f, &logs))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		want    = map[string][]byte{}
		refused []*plMsg
		wg      sync.WaitGroup
	)
	for s := range sessions {
		wg.Go(func() {
			for i := s; i < len(msgs); i += sessions {
				err := commitThen(q, msgs[i], func() {
					inCommit.Add(1)
					entered <- struct{}{}
				})
				inCommit.Add(-1)
				mu.Lock()
				if err == nil {
					want[msgs[i].id] = msgs[i].body
				} else {
					refused = append(refused, msgs[i])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := q.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	if len(refused) == 0 {
		t.Fatal("no commit failed")
	}
	got, logged := deliverEverything(t, f.Snapshot(nil))
	acked, refusal := checkDelivered(want, refused, got, logged, true)
	for _, p := range append(acked, refusal...) {
		t.Errorf("after a crash: %s", p)
	}
	t.Logf("%d commits failed with the flush, %d succeeded", len(refused), len(want))
}
