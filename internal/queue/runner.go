package queue

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/dsn"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
)

// add puts a newly committed message in the index and makes it due now. The committer has
// already counted it in its segment's live count.
func (q *Queue) add(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries[e.env.ID] = e
	q.stats.added(e.env)
	q.ready = append(q.ready, e)
	q.cond.Signal()
}

// Run starts the delivery workers and the scheduler; they stop when ctx is done or the queue is
// closed. Run on a closed queue does nothing.
func (q *Queue) Run(ctx context.Context) {
	if q.opts.Deliverer == nil && q.opts.Batch == nil {
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

// next blocks until a message is due and its destination has a free slot, and marks it busy;
// nil when the queue stops. A message held while it waited is dropped from the list: it stays
// out until released. One whose destination is full is parked until a delivery there ends.
func (q *Queue) next(ctx context.Context) *entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
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
		if e.env.Held {
			q.unparkLocked(q.destinationLocked(e)) // it may have been let through for a slot
			continue
		}
		e.dest = q.destinationLocked(e)
		if e.dest != "" {
			if q.inflight[e.dest] >= q.opts.DestinationConcurrency {
				e.parked = true
				q.parked[e.dest] = append(q.parked[e.dest], e)
				continue
			}
			q.inflight[e.dest]++
		}
		if q.throttledLocked(e) {
			continue
		}
		e.busy = true
		return e
	}
}

// destinationLocked is e's Destination ("" without limits).
func (q *Queue) destinationLocked(e *entry) string {
	if q.opts.Destination == nil {
		return ""
	}
	return q.opts.Destination(e.env)
}

// releaseLocked frees the slot e held in its destination.
func (q *Queue) releaseLocked(e *entry) {
	if e.dest == "" {
		return
	}
	if q.inflight[e.dest]--; q.inflight[e.dest] <= 0 {
		delete(q.inflight, e.dest)
	}
	q.unparkLocked(e.dest)
	e.dest = ""
}

// unparkLocked puts as many messages parked on dest back at the head of the ready list as dest
// has free slots. (One that finds the slot taken after all parks again: that costs a little
// churn, never a lost wake-up.)
func (q *Queue) unparkLocked(dest string) {
	waiting := q.parked[dest]
	n := min(len(waiting), q.opts.DestinationConcurrency-q.inflight[dest])
	if dest == "" || n <= 0 {
		return
	}
	for _, e := range waiting[:n] {
		e.parked = false
	}
	q.ready = append(slices.Clone(waiting[:n]), q.ready...)
	if n == len(waiting) {
		delete(q.parked, dest)
	} else {
		q.parked[dest] = waiting[n:]
	}
	q.cond.Broadcast()
}

// unlinkLocked takes a due message off the ready list or its destination's parked list.
func (q *Queue) unlinkLocked(e *entry) {
	if e.parked {
		w := q.parked[e.dest]
		if k := slices.Index(w, e); k >= 0 {
			q.parked[e.dest] = slices.Delete(w, k, k+1)
		}
		if len(q.parked[e.dest]) == 0 {
			delete(q.parked, e.dest)
		}
		e.parked, e.dest = false, ""
		return
	}
	if k := slices.Index(q.ready, e); k >= 0 {
		q.ready = slices.Delete(q.ready, k, k+1)
		q.unparkLocked(q.destinationLocked(e))
	}
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

// attempt delivers every pending recipient of e once, records the outcomes, sends the delivery
// reports they call for, and either forgets the message or schedules the next attempt.
func (q *Queue) attempt(ctx context.Context, e *entry) {
	q.mu.Lock()
	env := e.env.Clone()
	src := e.source()
	attempts := e.env.Attempts
	q.mu.Unlock()
	start := q.opts.Now()

	var pending []int
	for i, r := range env.Rcpts {
		if r.Status == envelope.Pending {
			pending = append(pending, i)
		}
	}
	outcomes := q.deliverAll(ctx, src, env, pending)
	// A delivery cut short by shutdown is not an attempt: the message is due again at the
	// next start, with no backoff and no "deferred" record.
	stopping := ctx.Err() != nil

	maxAge := q.opts.MaxAge
	if env.From == "" {
		maxAge = q.opts.BounceMaxAge
	}
	expired := start.Sub(env.Received) > maxAge
	warnDelay := !env.DelayNotified && q.opts.DelayWarning > 0 && start.Sub(env.Received) >= q.opts.DelayWarning
	st := stateRecord{ID: env.ID}
	var reports reportSet
	for _, i := range pending {
		o, ok := outcomes[i]
		if !ok {
			continue // not attempted: the queue is stopping
		}
		r := env.Rcpts[i]
		u := rcptUpdate{I: i}
		log := q.log.With("msgid", env.ID, "rcpt", r.Addr, "attempt", attempts+1,
			"delay", start.Sub(env.Received).Round(time.Millisecond))
		if o.RemoteMTA != "" {
			log = log.With("relay", o.RemoteMTA)
		}
		switch {
		case o.Err == nil:
			u.Status = envelope.Delivered
			log.Info("delivered")
			// Locally delivered, or relayed to a server that does not do DSN: a success report
			// is ours to send. A DSN-capable server got NOTIFY and reports for itself.
			switch {
			case o.RemoteMTA == "" && dsn.Wants(r.Notify, dsn.Delivered):
				reports.add(dsn.Delivered, i, reportRecipient(r, dsn.Delivered, o, start, time.Time{}))
			case o.Relayed && dsn.Wants(r.Notify, dsn.Relayed):
				reports.add(dsn.Relayed, i, reportRecipient(r, dsn.Relayed, o, start, time.Time{}))
			}
		case stopping && !delivery.IsPermanent(o.Err):
			log.Info("delivery interrupted by shutdown", "err", o.Err)
			continue
		case delivery.IsPermanent(o.Err) || expired:
			u.Status, u.Err, u.F = envelope.Failed, o.Err.Error(), delivery.Failure(o.Err)
			log.Warn("delivery failed", "err", o.Err, "expired", expired)
			if dsn.Wants(r.Notify, dsn.Failed) {
				reports.add(dsn.Failed, i, reportRecipient(r, dsn.Failed, o, start, time.Time{}))
			}
		default:
			u.Err, u.F = o.Err.Error(), delivery.Failure(o.Err)
			log.Info("delivery deferred", "err", o.Err)
			if warnDelay && dsn.Wants(r.Notify, dsn.Delayed) {
				reports.add(dsn.Delayed, i, reportRecipient(r, dsn.Delayed, o, start, env.Received.Add(maxAge)))
			}
		}
		st.Updates = append(st.Updates, u)
	}
	// The reports first, each carrying its recipients' outcomes (see reports.go); then the
	// outcomes nobody is told about, and the schedule.
	queued, rest := q.queueReports(env, src, st, reports)
	isPending := func(u rcptUpdate) bool { return u.Status == envelope.Pending }
	next := start.Add(q.backoff(attempts + 1))
	if slices.ContainsFunc(st.Updates, isPending) || slices.ContainsFunc(rest.Updates, isPending) {
		rest.Attempts, rest.Next = attempts+1, next.UnixMilli()
	}
	recorded := true
	if len(rest.Updates) > 0 || rest.DelayNotified || rest.Attempts > 0 {
		// Final outcomes of a message whose body has its own file are made durable before
		// forget may remove that file.
		final := slices.ContainsFunc(rest.Updates, func(u rcptUpdate) bool { return !isPending(u) })
		recorded = q.recordState(rest, src.external && final)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	e.busy = false
	q.releaseLocked(e)
	for _, eff := range queued {
		applyState(e.env, eff)
	}
	applyState(e.env, rest)
	if e.env.Done() {
		// Without a durable final state record the log still says pending: keep the body
		// file for the delivery after a restart (at least once) rather than a message whose
		// body is gone.
		q.forget(e, !recorded)
		return
	}
	if e.env.Held {
		return // held meanwhile: waits for a release
	}
	e.next = next
	q.deferLocked(e)
}

// deliverAll delivers to the pending recipients: with a BatchDeliverer one call per destination
// domain (so a remote server gets them in one transaction), otherwise one call per recipient.
// A panicking deliverer costs a temporary failure, not the server.
func (q *Queue) deliverAll(ctx context.Context, src bodySource, env *envelope.Envelope, pending []int) map[int]delivery.Outcome {
	out := make(map[int]delivery.Outcome, len(pending))
	if bd := q.opts.Batch; bd != nil {
		var domains []string
		groups := map[string][]int{}
		for _, i := range pending {
			d := envelope.Domain(env.Rcpts[i].Addr)
			if groups[d] == nil {
				domains = append(domains, d)
			}
			groups[d] = append(groups[d], i)
		}
		var mu sync.Mutex
		deliver := func(rcpts []int) {
			res := q.safely(env, func() []delivery.Outcome {
				return bd.DeliverBatch(ctx, env, rcpts, queueBody{q: q, src: src, id: env.ID, size: env.Size})
			}, len(rcpts))
			mu.Lock()
			defer mu.Unlock()
			for k, i := range rcpts {
				out[i] = res[k]
			}
		}
		if len(domains) == 1 { // most messages: no goroutine
			if ctx.Err() == nil {
				deliver(groups[domains[0]])
			}
			return out
		}
		// The domains in parallel (a few at a time): a server that hangs delays only its own
		// recipients, not those of the other domains.
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxParallelDomains)
		for _, d := range domains {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				deliver(groups[d])
			})
		}
		wg.Wait()
		return out
	}
	for _, i := range pending {
		if ctx.Err() != nil {
			break
		}
		res := q.safely(env, func() []delivery.Outcome {
			return []delivery.Outcome{{Err: q.deliverOne(ctx, src, env, i)}}
		}, 1)
		out[i] = res[0]
	}
	return out
}

// maxParallelDomains bounds the domains one message is delivered to at once.
const maxParallelDomains = 8

// safely runs a delivery, turning a panic, or a result of the wrong length, into temporary
// failures for all n recipients.
func (q *Queue) safely(env *envelope.Envelope, f func() []delivery.Outcome, n int) (res []delivery.Outcome) {
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("queue: deliverer panicked", "msgid", env.ID, "panic", p, "stack", string(debug.Stack()))
			res = nil
		}
		if len(res) != n {
			err := delivery.Temporary("queue: internal error", fmt.Errorf("deliverer failed (%d results for %d recipients)", len(res), n))
			res = make([]delivery.Outcome, n)
			for k := range res {
				res[k].Err = err
			}
		}
	}()
	return f()
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
	prefix   string // the envelope's Prepend, read before the stored octets
}

// source says where e's body is.
func (e *entry) source() bodySource {
	return bodySource{seg: e.seg, off: e.bodyOff, n: e.bodyLen, external: e.external, prefix: e.env.Prepend}
}

// deliverOne hands one recipient to a per-recipient deliverer.
func (q *Queue) deliverOne(ctx context.Context, src bodySource, env *envelope.Envelope, i int) error {
	body, err := (queueBody{q: q, src: src, id: env.ID}).Open()
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }() // only read: a failed Close loses nothing
	return q.opts.Deliverer.Deliver(ctx, env, i, body)
}

// queueBody is a message body in the queue, opened afresh for each reader.
type queueBody struct {
	q    *Queue
	src  bodySource
	id   string
	size int64
}

func (b queueBody) Open() (io.ReadCloser, error) {
	var rc io.ReadCloser
	if b.src.external {
		f, err := safeio.Open(b.q.fs, filepath.Join(b.q.bodyDir(), bodyName(b.id)))
		if err != nil {
			return nil, delivery.Temporary("queue: cannot read body", err)
		}
		rc = f
	} else {
		rc = io.NopCloser(io.NewSectionReader(b.src.seg.f, b.src.off, b.src.n))
	}
	if b.src.prefix == "" {
		return rc, nil
	}
	return prefixed{io.MultiReader(strings.NewReader(b.src.prefix), rc), rc}, nil
}

// prefixed reads the envelope's Prepend and then the stored body, and closes the body.
type prefixed struct {
	io.Reader
	io.Closer
}

func (b queueBody) Size() int64 { return b.size }

// recordState appends a state record. Final outcomes of a message whose body has its own file
// are made durable before that file is removed; others are written lazily (see package doc).
// It reports false when a record that had to be durable is not.
func (q *Queue) recordState(st stateRecord, durable bool) bool {
	payload, err := json.Marshal(st)
	if err != nil {
		q.log.Error("queue: encode state", "msgid", st.ID, "err", err)
		return false
	}
	req := &appendReq{rec: appendRecord(nil, recState, payload), sync: durable}
	if durable {
		if res := q.append(req); res.err != nil {
			q.log.Error("queue: state record", "msgid", st.ID, "err", res.err)
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
	q.stats.removed(e.env)
	e.seg.live--
	if e.external && !keepBody {
		q.removeBody(filepath.Join(q.bodyDir(), bodyName(e.env.ID))) // snapshot.go
	}
	q.dropSegments()
}

// backoff is the wait before attempt n+1: MinBackoff doubled per attempt, capped at
// MaxBackoff, with 10% jitter so that retries of a burst do not come back in lockstep.
func (q *Queue) backoff(attempts int) time.Duration {
	if sch := q.opts.RetrySchedule; len(sch) > 0 {
		return sch[min(attempts, len(sch))-1]
	}
	d := q.opts.MinBackoff
	for i := 1; i < attempts && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

func (q *Queue) onFlush(domain string, subdomains bool) {
	if q.opts.OnFlush != nil {
		q.opts.OnFlush(domain, subdomains)
	}
}

// maxBackoff is the longest wait backoff gives.
func (q *Queue) maxBackoff() time.Duration {
	if sch := q.opts.RetrySchedule; len(sch) > 0 {
		return slices.Max(sch)
	}
	return q.opts.MaxBackoff
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

// Flush makes every deferred message with a pending recipient in domain (or, with subdomains,
// in a subdomain of it) due now, for ETRN, and returns how many there were. Messages already
// due, held or being attempted are not counted.
func (q *Queue) Flush(domain string, subdomains bool) int {
	domain = strings.ToLower(domain)
	q.onFlush(domain, subdomains)
	q.mu.Lock()
	var ids []string
	for _, e := range q.entries {
		if e.busy || e.env.Held || !hasPendingIn(e.env, domain, subdomains) {
			continue
		}
		if q.makeDueLocked(e) {
			ids = append(ids, e.env.ID)
		}
	}
	q.mu.Unlock()
	q.recordDue(ids)
	return len(ids)
}

func hasPendingIn(env *envelope.Envelope, domain string, subdomains bool) bool {
	for _, r := range env.Rcpts {
		if r.Status != envelope.Pending {
			continue
		}
		d := envelope.Domain(r.Addr)
		if d == domain || subdomains && strings.HasSuffix(d, "."+domain) {
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
