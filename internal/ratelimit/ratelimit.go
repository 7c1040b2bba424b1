// Package ratelimit counts events per key against a limit per window (what Postfix's anvil
// does for smtpd's rate limits): the connections, messages and recipients of a client address
// or an account, the messages sent to a destination domain. It decides nothing about what a key
// means or what a refusal answers; package policy does.
//
// # Algorithm
//
// Each key is a GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp):
// a limit of N per window W lets N events through at once, then one more every W/N. The state
// of a key is a single time, the "theoretical arrival time" at which every event it counted is
// forgotten, which is why it was chosen over a sliding window:
//   - memory is one timestamp per key, whatever the limit, and a key whose time has passed is
//     the same as no key at all, so idle keys are dropped without losing anything;
//   - sharing the counters across nodes (the operations issue) needs one compare-and-swap on
//     one column per key, where a sliding log needs a row per event and a two-bucket window two
//     counters and their boundaries;
//   - a refusal knows exactly when the next event fits (retryAfter), and "tern limits show" can
//     say how much is used and when the bucket is full again, without a window boundary at which
//     a client may send twice the limit in a moment.
//
// A fixed window (Postfix's anvil) lets 2N through across a boundary in an instant; a GCRA lets
// at most N at once and N more spread over the window, which is the rate the limit names.
package ratelimit

import (
	"time"
)

// Limit is N events per window.
type Limit struct {
	N      int
	Window time.Duration
}

// Off reports whether l limits nothing (a zero count or window).
func (l Limit) Off() bool { return l.N <= 0 || l.Window <= 0 }

// Counter takes events from per-key buckets. It is the whole interface a store shared across
// nodes has to implement: one atomic read-modify-write of one key.
type Counter interface {
	// Take counts n events for key under lim. When they do not fit, nothing is counted, ok is
	// false and retryAfter is how long until they would (if nothing else is taken meanwhile);
	// n larger than lim.N never fits. An Off limit always lets through and counts nothing.
	Take(key string, n int, lim Limit) (ok bool, retryAfter time.Duration)
}

// Usage is the state of one key now, for tern limits show.
type Usage struct {
	Key    string        `json:"key"`
	Limit  int           `json:"limit"`
	Window time.Duration `json:"window_ns"`
	// Used is how many of Limit the events counted still take up now (rounded up); Limit minus
	// Used may come at once.
	Used int `json:"used"`
	// Reset is when every event counted is forgotten (Used drops by one every Window/Limit
	// before that).
	Reset time.Time `json:"resets_at"`
}
