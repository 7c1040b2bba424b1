package queue

import (
	"container/heap"
	"slices"

	"github.com/tern-mail/tern/internal/envelope"
)

// compact copies the pending messages of the oldest segment forward into the active one once
// the log has moved two segments on, so that the oldest can be deleted: one message that
// waits (deferred, held, parked behind a busy destination, or due while every worker is busy)
// never pins the log. A message being delivered stays; the next round takes it.
func (q *Queue) compact() {
	q.mu.Lock()
	if len(q.segs) < 3 {
		q.mu.Unlock()
		return
	}
	old := q.segs[0]
	q.mu.Unlock()
	q.carryForward(func(e *entry) bool { return e.seg == old })
	q.mu.Lock()
	q.dropSegments()
	q.mu.Unlock()
}

// migrate copies every message still in a version 1 segment forward into the active (version
// 2) segment, at Open, so that the old segments can be deleted. One that cannot be copied now
// is copied by compaction later, or at the next Open.
func (q *Queue) migrate() {
	q.mu.Lock()
	old := slices.ContainsFunc(q.segs, func(s *segment) bool { return s.version == 1 })
	q.mu.Unlock()
	if !old {
		return
	}
	q.log.Info("queue: converting the log to the current format")
	q.carryForward(func(e *entry) bool { return e.seg.version == 1 })
}

// carryForward copies the messages that match, and that nobody is working on, forward into
// the active segment.
//
// Each one is taken off the deferred heap, the ready list or its destination's parked list and
// marked moving while its copy is written: no attempt, no admin command and no hold or release
// can change its state under the copy. (A copy written after a state record but holding the
// state from before it would, on replay, bring delivered recipients back, a lifted hold, or a
// finished message whose body file is gone.) A flush meanwhile is recorded again after the copy.
// Copies share fdatasyncs, in batches of up to maxBatch octets.
func (q *Queue) carryForward(match func(*entry) bool) {
	q.mu.Lock()
	var (
		moves []*move
		due   bool // some were on the ready or parked lists
	)
	for _, e := range q.entries {
		if !match(e) || e.busy || e.moving || e.pins > 0 {
			continue
		}
		m := &move{e: e, env: e.env.Clone(), deferred: e.heapIdx >= 0,
			src: e.source()}
		if m.deferred {
			heap.Remove(&q.deferred, e.heapIdx)
		} else {
			due = true
		}
		e.moving = true
		moves = append(moves, m)
	}
	if due {
		q.unlinkMovingLocked()
	}
	q.mu.Unlock()
	for len(moves) > 0 {
		n, size := 0, 0
		for n < len(moves) && size < maxBatch {
			size += int(moves[n].src.n) + 512
			n++
		}
		q.copyForward(moves[:n])
		moves = moves[n:]
	}
}

// unlinkMovingLocked takes the moving entries off the ready and parked lists, in one pass each.
func (q *Queue) unlinkMovingLocked() {
	dests := make(map[string]bool)
	q.ready = slices.DeleteFunc(q.ready, func(e *entry) bool {
		if e.moving {
			dests[q.destinationLocked(e)] = true // it may have been let through for a slot
		}
		return e.moving
	})
	for dest, waiting := range q.parked {
		waiting = slices.DeleteFunc(waiting, func(e *entry) bool {
			if e.moving {
				e.parked, e.dest = false, ""
			}
			return e.moving
		})
		if len(waiting) == 0 {
			delete(q.parked, dest)
		} else {
			q.parked[dest] = waiting
		}
	}
	for dest := range dests {
		q.unparkLocked(dest)
	}
}

// move is one message being copied forward by compaction.
type move struct {
	e        *entry
	env      *envelope.Envelope // its state when it was taken
	deferred bool               // it was on the deferred heap (else due, or held)
	src      bodySource
	prefix   int // length of the record's payload before an inline body
	req      *appendReq
}

// copyForward writes a copy of each message in moves, waits for them to be durable, points the
// entries at the copies and puts them back where they were.
func (q *Queue) copyForward(moves []*move) {
	for _, m := range moves {
		placement := bodyInline
		var body []byte
		if m.src.external {
			placement = bodyExternal
		} else {
			body = make([]byte, m.src.n)
			if _, err := m.src.seg.f.ReadAt(body, m.src.off); err != nil {
				q.log.Error("queue: compaction read", "msgid", m.env.ID, "err", err)
				continue
			}
		}
		// No effects: those of a report were applied when it was written.
		prefix, err := messagePrefix(m.env, nil, placement)
		if err != nil {
			q.log.Error("queue: compaction encode", "msgid", m.env.ID, "err", err)
			continue
		}
		m.prefix = len(prefix)
		req := &appendReq{rec: appendRecord(nil, recMessage, prefix, body), sync: true, msg: true}
		if !q.send(req) {
			break // closed: the messages stay where they are
		}
		m.req = req
	}
	results := make([]appendResult, len(moves))
	for i, m := range moves {
		if m.req != nil {
			results[i] = q.wait(m.req)
			if results[i].err != nil {
				q.log.Error("queue: compaction write", "msgid", m.env.ID, "err", results[i].err)
			}
		}
	}
	var flushed []string
	q.mu.Lock()
	for i, m := range moves {
		e := m.e
		if res := results[i]; m.req != nil && res.err == nil {
			// The committer counted the copy as live in its segment.
			e.seg.live--
			e.seg = res.seg
			e.bodyOff = res.off + recHeaderLen + int64(m.prefix)
		}
		e.moving = false
		if e.flushed {
			e.flushed = false
			flushed = append(flushed, e.env.ID)
		}
		switch {
		case e.env.Held:
			// Waits for a release, on no list.
		case m.deferred:
			q.deferLocked(e)
		default:
			q.ready = append(q.ready, e)
			q.cond.Signal()
		}
	}
	q.moved.Broadcast()
	q.mu.Unlock()
	// After the copies, so that replay applies them to the copies.
	q.recordDue(flushed)
}
