package queue_test

// The power-loss tests run the queue and Maildir delivery on a crashfs.FS (a file system in
// memory that keeps what was made durable apart from what was only written), cut the power at
// many points of a realistic workload, recover on what a reboot finds and check that every
// message whose Commit returned nil (whose 250 could have been sent) is delivered, whole, or
// still queued, whole. They use only the queue's public API.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/maildir"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
	"github.com/tern-mail/tern/internal/testutil"
)

const (
	plSpool    = "/var/spool/tern/queue"
	plMail     = "/var/spool/tern/mail"
	plDown     = "down.test" // its recipients always fail temporarily: their messages stay queued
	plSlow     = "slow.test" // its recipients fail the first attempt, then go to Maildir
	plInline   = 1024        // InlineMax: larger bodies get a file of their own
	plSegment  = 4096        // SegmentSize: the log moves to a new segment every few messages
	plDeadline = 30 * time.Second
)

// plMsg is one message of a workload.
type plMsg struct {
	n     int // its number in the workload, written in its body
	rcpts []string
	body  []byte
	id    string // set by the session
}

// plWorkload returns the messages of a workload: inline and file bodies, one to four writes
// each, to local mailboxes and to a domain that is down.
func plWorkload(n int) []*plMsg {
	rcpts := [][]string{
		{"u1@local.test"},
		{"u2@local.test", "x@" + plDown},
		{"u3@local.test", "u1@local.test"},
		{"y@" + plDown},
		{"u2@local.test", "v@" + plSlow},
	}
	sizes := []int{300, 1500, 5000, 900}
	msgs := make([]*plMsg, n)
	for i := range msgs {
		var b bytes.Buffer
		fmt.Fprintf(&b, "Subject: power-loss message %d\r\n\r\n", i)
		for b.Len() < sizes[i%len(sizes)] {
			fmt.Fprintf(&b, "message %d, line at %d\r\n", i, b.Len())
		}
		msgs[i] = &plMsg{n: i, rcpts: rcpts[i%len(rcpts)], body: b.Bytes()}
	}
	return msgs
}

// want is the file a delivery of m to rcpt leaves in new/.
func (m *plMsg) want(rcpt string) string {
	return "Return-Path: <s@example.org>\nDelivered-To: " + rcpt + "\n" + strings.ReplaceAll(string(m.body), "\r\n", "\n")
}

// router delivers to Maildir, except that it fails plDown temporarily, and plSlow the first
// time.
type router struct {
	md    *maildir.Deliverer
	mu    sync.Mutex
	tried map[string]bool // plSlow message id and recipient
}

// DeliverBatch delivers the local recipients of one call in one Maildir batch (as the real
// router does), so that the crash points cover a batch of several files, renames and new/
// fsyncs, and the queue's record of their outcomes after it.
func (r *router) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	out := make([]delivery.Outcome, len(rcpts))
	var local, ks []int
	for k, i := range rcpts {
		addr := env.Rcpts[i].Addr
		switch envelope.Domain(addr) {
		case plDown:
			out[k].Err = delivery.Temporary("try later", errors.New(plDown+" is down"))
			continue
		case plSlow:
			r.mu.Lock()
			first := !r.tried[env.ID+" "+addr]
			r.tried[env.ID+" "+addr] = true
			r.mu.Unlock()
			if first {
				out[k].Err = delivery.Temporary("try later", errors.New(plSlow+" is busy"))
				continue
			}
		}
		local, ks = append(local, i), append(ks, k)
	}
	if len(local) > 0 {
		for n, o := range r.md.DeliverBatch(ctx, env, local, body) {
			out[ks[n]] = o
		}
	}
	return out
}

// plOptions are the queue's options on fsys, logging to logs.
func plOptions(fsys safeio.FS, logs io.Writer) queue.Options {
	return queue.Options{
		FS: fsys,
		Batch: &router{
			// Each file its own fsync: a batch's syncfs would make the queue's files durable
			// too, and hide a missing sync of the queue from the teeth (the Maildir's own
			// power-loss tests cover the syncfs).
			md:    maildir.New(maildir.Options{Root: plMail, Hostname: "h", FS: fsys, EachFileSync: true}),
			tried: map[string]bool{},
		},
		Workers:     4,
		InlineMax:   plInline,
		SegmentSize: plSegment,
		// A quick retry (plSlow succeeds there), then one far away.
		RetrySchedule: []time.Duration{2 * time.Millisecond, time.Hour},
		DelayWarning:  -1,
		Hostname:      "mx.test",
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// commit sends m as a session does: the body in chunks, then Commit.
func commit(q *queue.Queue, m *plMsg) error { return commitThen(q, m, nil) }

// commitThen is commit, calling before (if set) just before Commit.
func commitThen(q *queue.Queue, m *plMsg, before func()) error {
	w, err := q.NewMessage()
	if err != nil {
		return err
	}
	m.id = w.ID()
	for rest := m.body; len(rest) > 0; {
		k := min(len(rest), 2000)
		if _, err := w.Write(rest[:k]); err != nil {
			w.Abort()
			return err
		}
		rest = rest[k:]
	}
	env := &envelope.Envelope{From: "s@example.org", Size: int64(len(m.body)), Received: time.Now()}
	for _, r := range m.rcpts {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: r})
	}
	if before != nil {
		before()
	}
	return w.Commit(context.Background(), env)
}

// waitIdle waits until every message left in q waits for a retry an hour away: the plDown
// ones, and after a crash those whose deliveries the crash made fail.
func waitIdle(t testing.TB, q *queue.Queue) {
	t.Helper()
	deadline := time.Now().Add(plDeadline)
	for {
		idle := true
		soon := time.Now().Add(30 * time.Minute)
		for _, it := range q.Items() {
			if it.Busy || it.Next.Before(soon) {
				idle = false
				break
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not settle: %d messages", q.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// acks is the set of message ids whose Commit returned nil.
type acks struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (a *acks) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	a.ids[id] = true
}

// now returns a copy of the set.
func (a *acks) now() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.ids)
}

// runWorkload opens the queue on fsys, starts delivery, commits msgs from the given number of
// concurrent sessions (after each batch of them, calls between, if set), waits until the
// queue settles and closes it. A crash (fsys's power cut) anywhere in it is expected: the errors
// it causes are not the test's concern, only what a reboot finds.
func runWorkload(t testing.TB, fsys safeio.FS, sessions int, acked *acks, between func(), batches ...[]*plMsg) {
	t.Helper()
	var logs testutil.SyncBuffer
	q, err := queue.Open(plSpool, plOptions(fsys, &logs))
	if err != nil {
		return // the crash came during Open
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.Run(ctx)
	for k, msgs := range batches {
		if k > 0 && between != nil {
			between()
		}
		var wg sync.WaitGroup
		for s := range sessions {
			wg.Go(func() {
				for i := s; i < len(msgs); i += sessions {
					if commit(q, msgs[i]) == nil {
						acked.add(msgs[i].id)
					}
				}
			})
		}
		wg.Wait()
		waitIdle(t, q)
	}
	_ = q.Close() // a crash anywhere is expected, and what the reboot finds is the test
}

// plResult is what a check found.
type plResult struct {
	problems []string
	acked    int // acknowledged messages checked
	dups     int // deliveries beyond the first of a message to a recipient
	queued   int // acknowledged messages still queued after recovery
}

func (r *plResult) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *plResult) add(o plResult) {
	r.problems = append(r.problems, o.problems...)
	r.acked += o.acked
	r.dups += o.dups
	r.queued += o.queued
}

// recoverAndCheck opens the queue on the file system a crash left, runs it until it settles and
// checks the promise: every acknowledged message is delivered to each recipient (a complete
// file in new/) or still queued for it, with its whole body; nothing is half there (no
// damaged file in new/, no queued message with a damaged or missing body, no error logged by
// recovery).
func recoverAndCheck(t testing.TB, fsys safeio.FS, msgs []*plMsg, acked map[string]bool) plResult {
	t.Helper()
	var res plResult
	var logs testutil.SyncBuffer
	q, err := queue.Open(plSpool, plOptions(fsys, &logs))
	if err != nil {
		res.problem("Open after the crash: %v", err)
		return res
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.Run(ctx)
	waitIdle(t, q)

	byID := map[string]*plMsg{}
	for _, m := range msgs {
		if m.id != "" {
			byID[m.id] = m
		}
	}
	pending := map[string]bool{} // id and recipient still queued
	for _, it := range q.Items() {
		id := it.Envelope.ID
		m := byID[id]
		if m == nil {
			res.problem("queued message %s is none of the workload's", id)
			continue
		}
		if got := readAll(q, id); !bytes.Equal(got, m.body) {
			res.problem("queued message %d (%s): body of %d octets, want %d", m.n, id, len(got), len(m.body))
		}
		if acked[id] {
			res.queued++
		}
		for _, r := range it.Envelope.Rcpts {
			if r.Status == envelope.Pending {
				pending[id+" "+r.Addr] = true
			}
		}
	}
	if err := q.Close(); err != nil {
		res.problem("Close after recovery: %v", err)
	}
	cancel()
	if s := logs.String(); strings.Contains(s, "level=ERROR") {
		res.problem("recovery logged errors:\n%s", s)
	}

	delivered := checkMailboxes(fsys, msgs, &res)
	for _, m := range msgs {
		if !acked[m.id] {
			continue
		}
		res.acked++
		for _, r := range m.rcpts {
			if delivered[m.n][r] == 0 && !pending[m.id+" "+r] {
				res.problem("message %d (%s) to %s: acknowledged, neither delivered nor queued", m.n, m.id, r)
			}
		}
	}
	return res
}

// readAll reads a queued body; an error gives a body that matches nothing.
func readAll(q *queue.Queue, id string) []byte {
	rc, err := q.Body(id)
	if err != nil {
		return []byte(err.Error())
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return append(b, err.Error()...)
	}
	return b
}

// checkMailboxes checks that every file in every new/ is a complete message of the workload to
// that mailbox, and returns how many times each message reached each recipient.
func checkMailboxes(fsys safeio.FS, msgs []*plMsg, res *plResult) map[int]map[string]int {
	md := maildir.New(maildir.Options{Root: plMail, Hostname: "h", FS: fsys})
	want := map[string]int{} // file content -> message number
	var addrs []string
	for _, m := range msgs {
		for _, r := range m.rcpts {
			want[m.want(r)] = m.n
			if envelope.Domain(r) != plDown && !slices.Contains(addrs, r) {
				addrs = append(addrs, r)
			}
		}
	}
	delivered := map[int]map[string]int{}
	for _, addr := range addrs {
		dir, _ := md.Path(addr)
		dir = path.Join(dir, "new")
		des, err := fsys.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			res.problem("%s: %v", dir, err)
			continue
		}
		for _, de := range des {
			b, err := safeio.ReadFile(fsys, path.Join(dir, de.Name()))
			n, ok := want[string(b)]
			if err != nil || !ok || !slices.Contains(msgs[n].rcpts, addr) {
				res.problem("%s/%s: %d octets that are no message to %s (%.60q), %v", dir, de.Name(), len(b), addr, b, err)
				continue
			}
			if delivered[n] == nil {
				delivered[n] = map[string]int{}
			}
			if delivered[n][addr]++; delivered[n][addr] > 1 {
				res.dups++
			}
		}
	}
	return delivered
}

// crashRun runs a workload with the power cut after step n (never, if n < 0), then checks what
// a reboot finds: with only what was durable (random == nil) or with a random part of the rest.
// After the recovery, a second crash (with only what is durable) and a second recovery must
// find the same promise kept: recovery's own writes must be durable too.
func crashRun(t testing.TB, n int64, msgs []*plMsg, sessions int, random *rand.Rand, rule crashfs.Rule) plResult {
	t.Helper()
	f := crashfs.New()
	f.Inject(rule)
	if n >= 0 {
		f.CrashAfter(n)
	}
	var acked acks
	runWorkload(t, f, sessions, &acked, nil, msgs)
	var after *crashfs.FS
	if random != nil {
		after = f.CrashRandom(random)
	} else {
		after = f.Crash()
	}
	return recoverTwice(t, after, msgs, acked.now())
}

// recoverTwice is recoverAndCheck, then again after a crash of the recovered file system.
func recoverTwice(t testing.TB, after *crashfs.FS, msgs []*plMsg, acked map[string]bool) plResult {
	t.Helper()
	res := recoverAndCheck(t, after, msgs, acked)
	if len(res.problems) > 0 {
		return res
	}
	again := recoverAndCheck(t, after.Crash(), msgs, acked)
	res.problems = again.problems
	res.dups = max(res.dups, again.dups)
	return res
}

// report fails the test with the problems of one crash point, if any.
func report(t testing.TB, what string, res plResult) {
	t.Helper()
	if len(res.problems) == 0 {
		return
	}
	const most = 10
	for _, p := range res.problems[:min(most, len(res.problems))] {
		t.Errorf("%s: %s", what, p)
	}
	t.Fatalf("%s: %d problems", what, len(res.problems))
}

// countSteps runs the workload once without a crash and returns its number of steps.
func countSteps(t testing.TB, msgs []*plMsg, sessions int) int64 {
	t.Helper()
	f := crashfs.New()
	var acked acks
	runWorkload(t, f, sessions, &acked, nil, msgs)
	ids := acked.now()
	for _, m := range msgs {
		if !ids[m.id] {
			t.Fatalf("message %d was refused without a crash", m.n)
		}
	}
	report(t, "no crash", recoverAndCheck(t, f.Crash(), msgs, ids))
	return f.Steps()
}

// TestPowerLossEveryStep cuts the power after every step of a small workload (two sessions,
// eight messages, most of them delivered to Maildir, some retried) and checks what a reboot
// finds.
func TestPowerLossEveryStep(t *testing.T) {
	const sessions, messages = 2, 8
	steps := countSteps(t, plWorkload(messages), sessions)
	var total plResult
	for n := range steps + 1 {
		res := crashRun(t, n, plWorkload(messages), sessions, nil, nil)
		report(t, fmt.Sprintf("crash after step %d of %d", n, steps), res)
		total.add(res)
	}
	t.Logf("%d crash points; %d acknowledged messages checked, %d of them still queued; %d duplicate deliveries",
		steps+1, total.acked, total.queued, total.dups)
}

// TestKillThenPowerLoss kills the server (kill -9, which the page cache survives) after every
// step of a small workload, restarts it on what it left, runs a second workload to its end and
// then cuts the power (every other time keeping a random part of what was not durable). What the killed process left but did not make durable (a directory made
// and not yet synced, a record not yet flushed) must not be trusted by the next one, or mail it
// acknowledges is lost.
func TestKillThenPowerLoss(t *testing.T) {
	const sessions, messages = 2, 8
	steps := countSteps(t, plWorkload(messages), sessions)
	var total plResult
	for n := range steps + 1 {
		msgs := plWorkload(2 * messages)
		f := crashfs.New()
		f.CrashAfter(n)
		var acked acks
		runWorkload(t, f, sessions, &acked, nil, msgs[:messages])
		g := f.Restart()
		runWorkload(t, g, sessions, &acked, nil, msgs[messages:])
		after := g.Crash()
		if n%2 == 1 {
			after = g.CrashRandom(rand.New(rand.NewPCG(uint64(n), 14)))
		}
		res := recoverAndCheck(t, after, msgs, acked.now())
		report(t, fmt.Sprintf("killed after step %d of %d, then a crash (random: %v)", n, steps, n%2 == 1), res)
		total.add(res)
	}
	t.Logf("%d kill points; %d acknowledged messages checked, %d of them still queued; %d duplicate deliveries",
		steps+1, total.acked, total.queued, total.dups)
}

// TestPowerLossRandom cuts the power at random steps of a bigger workload (four sessions, 24
// messages) and checks what a reboot finds; every other crash keeps a random part of what was
// not durable (torn writes, holes, some names), which recovery must handle too.
func TestPowerLossRandom(t *testing.T) {
	const sessions, messages, points = 4, 24, 200
	steps := countSteps(t, plWorkload(messages), sessions)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	var total plResult
	for i := range points {
		n := rng.Int64N(steps + 1)
		var random *rand.Rand
		if i%2 == 1 {
			random = rand.New(rand.NewPCG(rng.Uint64(), 0))
		}
		res := crashRun(t, n, plWorkload(messages), sessions, random, nil)
		report(t, fmt.Sprintf("seed %d, point %d: crash after step %d of %d (random: %v)", seed, i, n, steps, random != nil), res)
		total.add(res)
	}
	t.Logf("%d crash points in %d steps; %d acknowledged messages checked, %d of them still queued; %d duplicate deliveries",
		points, steps, total.acked, total.queued, total.dups)
}

// TestPowerLossWithFaults makes one write or sync fail at a random step of the workload (the
// log's, a body file's, a Maildir's), then cuts the power at a random step: the failure and
// what the code does about it (sealing, a new segment, a retried delivery) must not lose an
// acknowledged message either.
func TestPowerLossWithFaults(t *testing.T) {
	const sessions, messages, points = 2, 16, 100
	steps := countSteps(t, plWorkload(messages), sessions)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 13))
	var total plResult
	for i := range points {
		fault, crash := 1+rng.Int64N(steps), rng.Int64N(steps+1)
		fired := "" // the operation that failed; the rule runs with the file system locked
		rule := func(op crashfs.Op) error {
			if fired == "" && op.Step >= fault && (op.Kind.IsSync() || op.Kind == crashfs.OpWrite) {
				fired = op.String()
				return syscall.EIO
			}
			return nil
		}
		res := crashRun(t, crash, plWorkload(messages), sessions, nil, rule)
		report(t, fmt.Sprintf("seed %d, point %d: %s failed, crash after step %d of %d", seed, i, fired, crash, steps), res)
		total.add(res)
	}
	t.Logf("%d faults and crash points in %d steps; %d acknowledged messages checked, %d of them still queued; %d duplicate deliveries",
		points, steps, total.acked, total.queued, total.dups)
}

// TestPowerLossCompaction takes crash points from one run long enough for compaction to copy
// deferred messages forward and delete old segments: a first batch of messages, a wait until
// a segment is deleted, a second batch. It takes a snapshot (what a crash would leave) at every
// step that touches the log while compaction runs, and at random steps elsewhere.
func TestPowerLossCompaction(t *testing.T) {
	const sessions, messages, sampled = 2, 16, 120
	first, second := plWorkload(2 * messages)[:messages], plWorkload(2 * messages)[messages:]
	msgs := append(slices.Clone(first), second...)
	type point struct {
		step  int64
		fs    *crashfs.FS
		acked map[string]bool
	}
	inWindow := 0 // points taken while compaction ran
	var (
		points    []point
		acked     acks
		mu        sync.Mutex
		compacted = make(chan struct{})
		waiting   bool // between the batches
		removed   bool
	)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 12))
	f := crashfs.New()
	f.AfterStep(func(op crashfs.Op, snapshot func(*rand.Rand) *crashfs.FS) {
		mu.Lock()
		defer mu.Unlock()
		inLog := path.Dir(op.Path) == plSpool+"/log"
		if waiting && inLog && op.Kind == crashfs.OpRemove && !removed {
			removed = true
			close(compacted)
		}
		if waiting && inLog || rng.IntN(4) == 0 && len(points) < sampled {
			var r *rand.Rand
			if len(points)%2 == 1 {
				r = rand.New(rand.NewPCG(rng.Uint64(), 0))
			}
			points = append(points, point{op.Step, snapshot(r), acked.now()})
			if waiting && inLog {
				inWindow++
			}
		}
	})
	between := func() {
		mu.Lock()
		waiting = true
		mu.Unlock()
		select {
		case <-compacted:
		case <-time.After(plDeadline):
			t.Fatal("compaction deleted no segment")
		}
		mu.Lock()
		waiting = false
		mu.Unlock()
	}
	runWorkload(t, f, sessions, &acked, between, first, second)
	points = append(points, point{f.Steps() + 1, f.Crash(), acked.now()})
	var total plResult
	for _, p := range points {
		res := recoverTwice(t, p.fs, msgs, p.acked)
		report(t, fmt.Sprintf("seed %d: crash after step %d", seed, p.step), res)
		total.add(res)
	}
	t.Logf("%d crash points in %d steps, %d of them in the log while compaction ran; %d acknowledged messages checked, %d of them still queued; %d duplicate deliveries",
		len(points), f.Steps(), inWindow, total.acked, total.queued, total.dups)
}

// TestPowerLossTeeth proves that the power-loss check notices a missing fsync: with any one
// sync of the write path made a silent no-op (as if the code had no fsync there), a crash
// after the workload loses or damages an acknowledged message. One mutation skips only half of
// the log's flushes, the later ones making up for it: only a crash between the two can show
// it, so its case crashes at every step until one does.
func TestPowerLossTeeth(t *testing.T) {
	syncDir := func(dir string) func(crashfs.Op) bool {
		return func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && op.Path == dir }
	}
	logSync := func(op crashfs.Op) bool {
		return op.Kind == crashfs.OpDatasync && path.Dir(op.Path) == plSpool+"/log"
	}
	tests := []struct {
		name  string
		skip  func(crashfs.Op) bool
		sweep bool // crash at every step, not only after the workload
	}{
		{name: "body file", skip: func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSync && path.Dir(op.Path) == plSpool+"/body"
		}},
		{name: "body directory", skip: syncDir(plSpool + "/body")},
		{name: "log record", skip: logSync},
		{name: "log record, one flush in two", sweep: true, skip: func(op crashfs.Op) bool {
			return logSync(op) && op.Step%2 == 0
		}},
		{name: "new segment's directory", skip: syncDir(plSpool + "/log")},
		{name: "queue directory", skip: syncDir(plSpool)},
		{name: "Maildir file", skip: func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSync && strings.HasPrefix(op.Path, plMail+"/")
		}},
		{name: "Maildir new/", skip: func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && strings.HasPrefix(op.Path, plMail+"/") && path.Base(op.Path) == "new"
		}},
		{name: "Maildir directory", skip: func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "Maildir"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var skipped atomic.Int64
			rule := func(op crashfs.Op) error {
				if tc.skip(op) {
					skipped.Add(1)
					return crashfs.ErrSkip
				}
				return nil
			}
			points := []int64{-1} // after the workload
			if tc.sweep {
				points = nil
				for n := range countSteps(t, plWorkload(12), 2) + 1 {
					points = append(points, n)
				}
			}
			for _, n := range points {
				res := crashRun(t, n, plWorkload(12), 2, nil, rule)
				if len(res.problems) > 0 {
					t.Logf("%d syncs skipped; detected at crash point %d: %.200s (%d problems)", skipped.Load(), n, res.problems[0], len(res.problems))
					return
				}
			}
			if skipped.Load() == 0 {
				t.Fatal("the mutation skipped no sync")
			}
			t.Fatalf("no loss detected without this fsync, at %d crash points", len(points))
		})
	}
}
