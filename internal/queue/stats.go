package queue

import (
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// Stats is a summary of the queue, for metrics.
type Stats struct {
	Messages int // every message in the queue
	Held     int // those an administrator holds
	// Oldest is when the oldest message was received; zero when the queue is empty.
	Oldest time.Time
}

// statCounts is what Stats reports, kept up to date under Queue.mu as messages enter, leave
// and are held, so that a scrape does not walk a queue of a hundred thousand messages under
// the lock every few seconds. The oldest message's time is kept as a minimum: a message
// younger than it leaves without a walk; only when the oldest itself leaves is it looked for
// again, once, at the next Stats. A stuck queue (the one worth watching) keeps its oldest.
type statCounts struct {
	held        int
	oldest      time.Time
	oldestStale bool // the oldest left: find it again
}

// countStats counts entries afresh (at recovery).
func countStats(entries map[string]*entry) statCounts {
	var c statCounts
	for _, e := range entries {
		if e.env.Held {
			c.held++
		}
		c.addOldest(e.env.Received)
	}
	return c
}

// addOldest takes r into the oldest time.
func (c *statCounts) addOldest(r time.Time) {
	if !c.oldestStale && (c.oldest.IsZero() || r.Before(c.oldest)) {
		c.oldest = r
	}
}

// added counts a message that entered the queue.
func (c *statCounts) added(env *envelope.Envelope) {
	if env.Held {
		c.held++
	}
	c.addOldest(env.Received)
}

// removed counts a message that left the queue.
func (c *statCounts) removed(env *envelope.Envelope) {
	if env.Held {
		c.held--
	}
	if !env.Received.After(c.oldest) {
		c.oldestStale = true
	}
}

// setHeld counts a message held (true) or released.
func (c *statCounts) setHeld(held bool) {
	if held {
		c.held++
	} else {
		c.held--
	}
}

// Stats returns the summary of the queue now, from the counts the queue keeps; it walks the
// entries, without copying any, only when the oldest message left since the last call.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := &q.stats
	if c.oldestStale || len(q.entries) == 0 {
		c.oldest, c.oldestStale = time.Time{}, false
		for _, e := range q.entries {
			c.addOldest(e.env.Received)
		}
	}
	return Stats{Messages: len(q.entries), Held: c.held, Oldest: c.oldest}
}
