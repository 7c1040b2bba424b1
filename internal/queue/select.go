package queue

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// Selection picks messages by what the queue's index holds of them (envelope and schedule),
// never by reading a body: `tern queue list --to bob@example.com`, `tern queue hold --domain
// example.com`. Every field set must match (and); the zero Selection matches every message.
type Selection struct {
	// From matches the sender: an address (case-insensitive), "@domain" for any sender in that
	// domain, or "<>" for the null sender (bounces and other reports).
	From string `json:"from,omitempty"`
	// To matches a pending recipient: an address (case-insensitive) or "@domain". Recipients
	// already delivered or failed do not count: the message no longer waits for them.
	To string `json:"to,omitempty"`
	// Domain matches a pending recipient in that domain (not its subdomains), as postqueue -s.
	Domain string `json:"domain,omitempty"`
	// Held matches held messages only (tern queue hold).
	Held bool `json:"held,omitempty"`
	// Deferred matches only messages that wait for a retry after a failed attempt: not held,
	// not due, not being delivered.
	Deferred bool `json:"deferred,omitempty"`
}

// ErrSelection is returned for a Selection that cannot match anything as written.
var ErrSelection = errors.New("queue: bad selection")

// IsZero reports whether s selects every message.
func (s Selection) IsZero() bool { return s == Selection{} }

// Check reports a selection that is contradictory or malformed, so that a typo does not
// silently select nothing (or, worse, everything).
func (s Selection) Check() error {
	if s.Held && s.Deferred {
		return errors.Join(ErrSelection, errors.New("--held and --deferred exclude each other: a held message is never deferred"))
	}
	for _, f := range []struct{ name, v string }{{"--from", s.From}, {"--to", s.To}} {
		if f.v == "<>" && f.name == "--from" {
			continue
		}
		if f.v != "" && !strings.Contains(f.v, "@") {
			return errors.Join(ErrSelection, errors.New(f.name+" "+f.v+": give an address, or @domain for a whole domain"))
		}
	}
	if strings.ContainsAny(s.Domain, "@ ") {
		return errors.Join(ErrSelection, errors.New("--domain "+s.Domain+": give a domain name, without @"))
	}
	return nil
}

// Match reports whether the message it is selected by s.
func (s Selection) Match(it Item) bool {
	e := it.Envelope
	switch {
	case s.Held && !e.Held:
		return false
	case s.Deferred && !it.Deferred():
		return false
	case s.From != "" && !matchFrom(s.From, e.From):
		return false
	}
	if s.To == "" && s.Domain == "" {
		return true
	}
	return slices.ContainsFunc(e.Rcpts, func(r envelope.Recipient) bool {
		return r.Status == envelope.Pending &&
			(s.To == "" || matchAddr(s.To, r.Addr)) &&
			(s.Domain == "" || sameDomain(envelope.Domain(r.Addr), s.Domain))
	})
}

func matchFrom(want, from string) bool {
	if want == "<>" {
		return from == ""
	}
	return from != "" && matchAddr(want, from)
}

// matchAddr matches addr against an address or "@domain", case-insensitively: local parts are
// case-sensitive in principle (RFC 5321 §2.4), but an administrator looking for bob's mail
// means Bob's too.
func matchAddr(want, addr string) bool {
	if d, ok := strings.CutPrefix(want, "@"); ok {
		return sameDomain(envelope.Domain(addr), d)
	}
	return strings.EqualFold(want, addr)
}

// sameDomain compares domain names as DNS does: without case, the root's dot or not.
func sameDomain(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// Select returns the messages s selects, oldest first. Only those are copied.
func (q *Queue) Select(s Selection) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	var items []Item
	for _, e := range q.entries {
		// The entry's own fields first, so that a message not selected is never cloned.
		it := Item{Envelope: e.env, Busy: e.busy}
		if e.heapIdx >= 0 {
			it.Next = e.next
		}
		if s.Match(it) {
			items = append(items, q.itemLocked(e))
		}
	}
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.Envelope.ID, b.Envelope.ID) })
	return items
}

// ListItems is List as Items, for the command line with the server stopped: Next is the
// recorded next attempt when it is still ahead at now.
func ListItems(envs []*envelope.Envelope, now time.Time) []Item {
	items := make([]Item, len(envs))
	for i, e := range envs {
		items[i] = Item{Envelope: e}
		if !e.Held && e.NextAttempt.After(now) {
			items[i].Next = e.NextAttempt
		}
	}
	return items
}
