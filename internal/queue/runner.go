package queue

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// add puts a newly committed message in the index and makes it due now. The committer has
// already counted it in its segment's live count.
func (q *Queue) add(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries[e.env.ID] = e
	q.ready = append(q.ready, e)
	q.cond.Signal()
}

// Run starts the delivery workers and the scheduler; they stop when ctx is done or the queue is
// closed. Run on a closed queue does nothing.
func (q *Queue) Run(ctx context.Context) {
	if q.opts.Deliverer == nil {
		panic("queue: Run without a Deliverer")
	}
	// Add under q.mu: Close sets q.closed under it before it waits, so no Add can race with
	// that Wait.
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.workers.Add(q.opts.Workers + 2)
	q.mu.Unlock()
	for range q.opts.Workers {
		go q.worker(ctx)
	}
	go q.scheduler(ctx)
	// Wake the workers when ctx ends, since they wait on a condition variable.
	go func() {
		defer q.workers.Done()
		select {
		case <-ctx.Done():
		case <-q.closing:
		}
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	}()
}

// next blocks until a message is due, and marks it busy; nil when the queue stops.
func (q *Queue) next(ctx context.Context) *entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 {
		if q.closed || ctx.Err() != nil {
			return nil
		}
		q.cond.Wait()
	}
	if q.closed || ctx.Err() != nil {
		return nil
	}
	e := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	e.busy = true
	return e
}

func (q *Queue) worker(ctx context.Context) {
	defer q.workers.Done()
	for {
		e := q.next(ctx)
		if e == nil {
			return
		}
		q.attempt(ctx, e)
	}
}

// attempt delivers every pending recipient of e once, records the outcomes and either forgets
// the message or schedules the next attempt.
func (q *Queue) attempt(ctx context.Context, e *entry) {
	q.mu.Lock()
	env := e.env.Clone()
	src := bodySource{seg: e.seg, off: e.bodyOff, n: e.bodyLen, external: e.external}
	q.mu.Unlock()
	start := time.Now()

	var updates []rcptUpdate
	expired := start.Sub(env.Received) > q.opts.MaxAge
	for i, r := range env.Rcpts {
		if r.Status != envelope.Pending {
			continue
		}
		err := q.deliverOne(ctx, src, env, i)
		u := rcptUpdate{I: i}
		log := q.log.With("msgid", env.ID, "rcpt", r.Addr, "attempt", e.attempts+1,
			"delay", time.Since(env.Received).Round(time.Millisecond))
		switch {
		case err == nil:
			u.Status = envelope.Delivered
			log.Info("delivered")
		case delivery.IsPermanent(err) || expired:
			u.Status, u.Err = envelope.Failed, err.Error()
			// TODO(tern): a DSN bounce to the sender comes with the delivery issue (#7).
			log.Warn("delivery failed", "err", err, "expired", expired)
		default:
			u.Err = err.Error()
			log.Info("delivery deferred", "err", err)
		}
		updates = append(updates, u)
		if ctx.Err() != nil {
			break
		}
	}
	recorded := true
	if len(updates) > 0 {
		recorded = q.recordState(env.ID, updates, src.external)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	e.busy = false
	for _, u := range updates {
		e.env.Rcpts[u.I].Status = u.Status
		e.env.Rcpts[u.I].LastError = u.Err
	}
	if e.env.Done() {
		// Without a durable final state record the log still says pending: keep the body
		// file for the delivery after a restart (at least once) rather than a message whose
		// body is gone.
		q.forget(e, !recorded)
		return
	}
	e.attempts++
	e.next = start.Add(q.backoff(e.attempts))
	q.deferLocked(e)
}

// deferLocked puts e in the deferred heap and, if it is now the first due, tells the scheduler.
// Called with q.mu held.
func (q *Queue) deferLocked(e *entry) {
	heap.Push(&q.deferred, e)
	if e.heapIdx == 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// bodySource says where a message body is: a stretch of a segment, or its own file. A worker
// takes it under the lock, since compaction may move the message meanwhile (never while busy).
type bodySource struct {
	seg      *segment
	off, n   int64
	external bool
}

// deliverOne hands one recipient to the deliverer, with the body read from the log or its file.
// A panicking deliverer costs one temporary failure, not the server.
func (q *Queue) deliverOne(ctx context.Context, src bodySource, env *envelope.Envelope, i int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("queue: deliverer panicked", "msgid", env.ID, "rcpt", env.Rcpts[i].Addr,
				"panic", p, "stack", string(debug.Stack()))
			err = delivery.Temporary("queue: internal error", fmt.Errorf("deliverer panicked: %v", p))
		}
	}()
	var body io.Reader
	if src.external {
		f, err := os.Open(filepath.Join(q.bodyDir(), bodyName(env.ID)))
		if err != nil {
			return delivery.Temporary("queue: cannot read body", err)
		}
		defer f.Close()
		body = f
	} else {
		body = io.NewSectionReader(src.seg.f, src.off, src.n)
	}
	return q.opts.Deliverer.Deliver(ctx, env, i, body)
}

// recordState appends a state record. Final outcomes of a message whose body has its own file
// are made durable before that file is removed; others are written lazily (see package doc).
// It reports false when a record that had to be durable is not.
func (q *Queue) recordState(id string, updates []rcptUpdate, external bool) bool {
	payload, err := json.Marshal(stateRecord{ID: id, Updates: updates})
	if err != nil {
		q.log.Error("queue: encode state", "msgid", id, "err", err)
		return false
	}
	req := &appendReq{rec: appendRecord(nil, recState, payload), sync: external}
	if external {
		if res := q.append(req); res.err != nil {
			q.log.Error("queue: state record", "msgid", id, "err", res.err)
			return false
		}
		return true
	}
	q.send(req) // nobody waits for the result
	return true
}

// forget drops a finished message, and its body file unless keepBody. Called with q.mu held.
func (q *Queue) forget(e *entry, keepBody bool) {
	delete(q.entries, e.env.ID)
	e.seg.live--
	if e.external && !keepBody {
		if err := os.Remove(filepath.Join(q.bodyDir(), bodyName(e.env.ID))); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.Error("queue: remove body", "msgid", e.env.ID, "err", err)
		}
	}
	q.dropSegments()
}

// backoff is the wait before attempt n+1: MinBackoff doubled per attempt, capped at
// MaxBackoff, with 10% jitter so that retries of a burst do not come back in lockstep.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.opts.MinBackoff
	for i := 1; i < attempts && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// compactInterval is how often the scheduler looks for a segment to compact.
const compactInterval = time.Second

// scheduler moves deferred messages to the ready list when they are due, and compacts the log.
// It sleeps until the first deferred message is due (at most compactInterval); deferLocked
// wakes it when an earlier one arrives.
func (q *Queue) scheduler(ctx context.Context) {
	defer q.workers.Done()
	timer := time.NewTimer(compactInterval)
	defer timer.Stop()
	lastCompact := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.closing:
			return
		case <-timer.C:
		case <-q.wake:
		}
		now := time.Now()
		wait := compactInterval - now.Sub(lastCompact)
		q.mu.Lock()
		for q.deferred.Len() > 0 && !q.deferred[0].next.After(now) {
			e := heap.Pop(&q.deferred).(*entry)
			q.ready = append(q.ready, e)
			q.cond.Signal()
		}
		if q.deferred.Len() > 0 {
			wait = min(wait, q.deferred[0].next.Sub(now))
		}
		q.mu.Unlock()
		if wait <= 0 {
			q.compact()
			lastCompact = time.Now()
			wait = compactInterval
			q.mu.Lock()
			if q.deferred.Len() > 0 {
				wait = min(wait, time.Until(q.deferred[0].next))
			}
			q.mu.Unlock()
		}
		timer.Reset(max(wait, 0))
	}
}

// Flush makes every deferred message with a pending recipient in domain (or a subdomain) due
// now, for ETRN, and returns how many there were. Messages already due or being attempted are
// not counted.
func (q *Queue) Flush(domain string) int {
	domain = strings.ToLower(domain)
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, e := range q.entries {
		if e.busy || !hasPendingIn(e.env, domain) {
			continue
		}
		switch {
		case e.heapIdx >= 0:
			heap.Remove(&q.deferred, e.heapIdx)
			q.ready = append(q.ready, e)
			q.cond.Signal()
		case e.moving:
			e.next = time.Now() // due as soon as compaction puts it back
		default:
			continue // already due
		}
		n++
	}
	return n
}

func hasPendingIn(env *envelope.Envelope, domain string) bool {
	for _, r := range env.Rcpts {
		if r.Status != envelope.Pending {
			continue
		}
		d := strings.ToLower(r.Addr[strings.LastIndexByte(r.Addr, '@')+1:])
		if d == domain || strings.HasSuffix(d, "."+domain) {
			return true
		}
	}
	return false
}

// deferHeap orders deferred entries by their next attempt.
type deferHeap []*entry

func (h deferHeap) Len() int           { return len(h) }
func (h deferHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h deferHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *deferHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *deferHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
