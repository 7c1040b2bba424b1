package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/dsn"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

// ErrNotFound is returned for a queue id that is not (or no longer) in the queue.
var ErrNotFound = errors.New("queue: no such message")

// ErrBusy is returned when a message is being delivered right now; try again in a moment.
var ErrBusy = errors.New("queue: message is being delivered")

// Item is what the queue knows of one message, for `tern queue list/show`.
type Item struct {
	Envelope *envelope.Envelope
	// Next is when the next attempt is due (zero: due now, held or being delivered).
	Next time.Time
	// Busy is set while a delivery attempt runs.
	Busy bool
	// WaitingFor is the destination whose deliveries are all taken (destination_concurrency)
	// while the message, due, waits for one of them to end.
	WaitingFor string
}

// Deferred reports whether the message waits for a retry: not held, not being delivered,
// not due now.
func (it Item) Deferred() bool { return !it.Envelope.Held && !it.Busy && !it.Next.IsZero() }

// Items returns every queued message, oldest first.
func (q *Queue) Items() []Item { return q.Select(Selection{}) }

// Show returns one message.
func (q *Queue) Show(id string) (Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[id]
	if e == nil {
		return Item{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return q.itemLocked(e), nil
}

func (q *Queue) itemLocked(e *entry) Item {
	it := Item{Envelope: e.env.Clone(), Busy: e.busy}
	if e.parked {
		it.WaitingFor = e.dest
	}
	if e.heapIdx >= 0 {
		it.Next = e.next
	}
	return it
}

// FlushID makes one message due now (tern queue flush ID).
func (q *Queue) FlushID(id string) error {
	q.onFlush("", false)
	q.mu.Lock()
	e := q.entries[id]
	switch {
	case e == nil:
		q.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case e.env.Held:
		q.mu.Unlock()
		return fmt.Errorf("queue: %s is held: release it first", id)
	}
	due := q.makeDueLocked(e)
	q.mu.Unlock()
	if due {
		q.recordDue([]string{id})
	}
	return nil
}

// FlushAll makes every message that is not held due now, and returns how many there were.
func (q *Queue) FlushAll() int {
	q.onFlush("", false)
	q.mu.Lock()
	var ids []string
	for _, e := range q.entries {
		if !e.env.Held && q.makeDueLocked(e) {
			ids = append(ids, e.env.ID)
		}
	}
	q.mu.Unlock()
	q.recordDue(ids)
	return len(ids)
}

// recordDue writes that the messages ids were made due now, so that a flush made with the
// server stopped, or just before a crash, still holds at the next start (the log keeps each
// message's next attempt). Not made durable at once: losing it only delays.
func (q *Queue) recordDue(ids []string) {
	for _, id := range ids {
		q.recordState(stateRecord{ID: id, Due: true}, false)
	}
}

// makeDueLocked moves a deferred entry to the ready list; false if it was not deferred.
func (q *Queue) makeDueLocked(e *entry) bool {
	e.env.NextAttempt = time.Time{} // for a compaction copy
	switch {
	case e.heapIdx >= 0:
		heap.Remove(&q.deferred, e.heapIdx)
	case e.moving:
		// Due as soon as compaction puts it back, which records the flush again after the copy.
		e.next = time.Time{}
		e.flushed = true
		return true
	default:
		return false // already due, or being delivered
	}
	q.ready = append(q.ready, e)
	q.cond.Signal()
	return true
}

// Hold stops delivery of a message until Release; it survives restarts.
func (q *Queue) Hold(id string) error { return q.setHeld(id, true) }

// Release ends a hold and makes the message due now.
func (q *Queue) Release(id string) error { return q.setHeld(id, false) }

func (q *Queue) setHeld(id string, held bool) error {
	q.mu.Lock()
	e := q.entries[id]
	for e != nil && e.moving {
		// Its copy must not miss the change: wait for the copy, then pin the entry (so that
		// compaction leaves it alone) while the change is recorded.
		q.moved.Wait()
		e = q.entries[id]
	}
	if e == nil {
		q.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if e.env.Held == held {
		q.mu.Unlock()
		return nil
	}
	e.pins++
	q.mu.Unlock()
	// A release makes the message due now, also at the next start.
	ok := q.recordState(stateRecord{ID: id, Held: &held, Due: !held}, true)
	q.mu.Lock()
	defer q.mu.Unlock()
	e.pins--
	if !ok {
		return errors.New("queue: could not record the change")
	}
	if q.entries[id] != e {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.env.Held = held
	q.stats.setHeld(held)
	if !held {
		e.env.NextAttempt = time.Time{}
	}
	switch {
	case held && e.heapIdx >= 0:
		heap.Remove(&q.deferred, e.heapIdx)
	case held:
		// Due or busy: taking it off the ready list here would race with the workers, so the
		// worker that picks it (or finishes it) sees Held and leaves it be.
	case !e.busy && !e.parked && e.heapIdx < 0 && !slices.Contains(q.ready, e):
		q.ready = append(q.ready, e)
		q.cond.Signal()
	}
	q.log.Info("queue: message held", "msgid", id, "held", held)
	return nil
}

// Delete removes a message without delivering it or telling its sender (tern queue delete).
func (q *Queue) Delete(_ context.Context, id string) error {
	return q.finish(id, "deleted by the administrator", false)
}

// Bounce fails every pending recipient of a message now and sends the sender a bounce, as if
// delivery had failed permanently (tern queue bounce). The bounce and the failures are one
// record: if the bounce cannot be queued, nothing changes and Bounce returns an error. The
// context is not used (nor by Delete): the change is quick, and not to be cut in the middle.
func (q *Queue) Bounce(_ context.Context, id string) error {
	return q.finish(id, "returned to sender by the administrator", true)
}

// finish fails all pending recipients of id, with a report when bounce is set.
func (q *Queue) finish(id, why string, bounce bool) error {
	q.mu.Lock()
	e := q.entries[id]
	for e != nil && e.moving {
		q.moved.Wait() // compaction is copying it: a moment
		e = q.entries[id]
	}
	switch {
	case e == nil:
		q.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case e.busy:
		q.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrBusy, id)
	}
	// Mark it busy so that no worker or compaction touches it while we work.
	if e.heapIdx >= 0 {
		heap.Remove(&q.deferred, e.heapIdx)
	}
	q.unlinkLocked(e)
	e.busy = true
	env := e.env.Clone()
	src := e.source()
	q.mu.Unlock()

	st, bounced := q.failAll(env, why, bounce)
	// The bounce carries the failures it reports (see reports.go): without it, nothing changes.
	var reportedSt *stateRecord
	switch {
	case len(bounced) == 0:
	case env.From == "":
		q.log.Info("no report for a message from the null sender", "msgid", id, "action", string(dsn.Failed))
	default:
		eff := takeUpdates(&st, bounced)
		if err := q.queueReport(env, src, dsn.Failed, bounced, &eff); err != nil {
			q.mu.Lock()
			defer q.mu.Unlock()
			e.busy = false
			q.ready = append(q.ready, e) // as it was: due
			q.cond.Signal()
			return fmt.Errorf("queue: could not queue the bounce: %w", err)
		}
		reportedSt = &eff
	}
	recorded := len(st.Updates) == 0 || q.recordState(st, true)
	q.mu.Lock()
	defer q.mu.Unlock()
	e.busy = false
	if reportedSt != nil {
		applyState(e.env, *reportedSt)
	}
	if !recorded {
		q.ready = append(q.ready, e) // as it was: due
		q.cond.Signal()
		return errors.New("queue: could not record the change")
	}
	applyState(e.env, st)
	q.log.Info("queue: message removed", "msgid", id, "why", why)
	q.forget(e, false)
	return nil
}

// failAll returns the state record that fails every pending recipient of env for the reason
// why, and, with bounce, the recipients that asked for a bounce.
func (q *Queue) failAll(env *envelope.Envelope, why string, bounce bool) (stateRecord, []reported) {
	err := &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhOther, Msg: why}
	st := stateRecord{ID: env.ID}
	var bounced []reported
	for i, r := range env.Rcpts {
		if r.Status != envelope.Pending {
			continue
		}
		st.Updates = append(st.Updates, rcptUpdate{I: i, Status: envelope.Failed, Err: err.Error(), F: r.LastFailure})
		if bounce && dsn.Wants(r.Notify, dsn.Failed) {
			bounced = append(bounced, reported{i, adminReport(r, why)})
		}
	}
	return st, bounced
}

// Body opens a queued message's body (for tern queue show). Until the reader is closed the
// message stays where it is in the log: compaction would delete the segment under the reader.
func (q *Queue) Body(id string) (io.ReadCloser, error) {
	q.mu.Lock()
	e := q.entries[id]
	for e != nil && e.moving {
		q.moved.Wait()
		e = q.entries[id]
	}
	if e == nil {
		q.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	src := e.source()
	e.pins++
	q.mu.Unlock()
	unpin := sync.OnceFunc(func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		e.pins--
	})
	rc, err := (queueBody{q: q, src: src, id: id}).Open()
	if err != nil {
		unpin()
		return nil, err
	}
	return pinnedBody{rc, unpin}, nil
}

// pinnedBody is a body reader that unpins its message when closed.
type pinnedBody struct {
	io.ReadCloser
	unpin func()
}

func (b pinnedBody) Close() error {
	b.unpin()
	return b.ReadCloser.Close()
}
