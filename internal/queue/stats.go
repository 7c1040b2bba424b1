package queue

import "time"

// Stats is a summary of the queue, for metrics.
type Stats struct {
	Messages int // every message in the queue
	Held     int // those an administrator holds
	// Oldest is when the oldest message was received; zero when the queue is empty.
	Oldest time.Time
}

// Stats returns the summary of the queue now. It walks every entry under the queue's lock,
// without copying any, so that a scrape costs no allocation per message.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Stats{Messages: len(q.entries)}
	for _, e := range q.entries {
		if e.env.Held {
			st.Held++
		}
		if r := e.env.Received; st.Oldest.IsZero() || r.Before(st.Oldest) {
			st.Oldest = r
		}
	}
	return st
}
