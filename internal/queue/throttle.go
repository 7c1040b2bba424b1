package queue

// throttledLocked asks Options.Throttle about e, which holds its destination's slot: when the
// destination's rate says wait, e gives the slot back and is deferred for the wait, as if its
// attempt were due then (the message keeps its attempts, backoff and records as they were).
func (q *Queue) throttledLocked(e *entry) bool {
	if q.opts.Throttle == nil {
		return false
	}
	wait := q.opts.Throttle(e.env)
	if wait <= 0 {
		return false
	}
	q.releaseLocked(e)
	e.next = q.opts.Now().Add(wait)
	q.deferLocked(e)
	return true
}
