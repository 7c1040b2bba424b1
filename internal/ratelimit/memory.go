package ratelimit

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Memory's keys: about 100 octets each, 20 MB at most.
const DefaultMaxKeys = 200000

// Memory is a Counter in memory, for one node. Keys whose events are all forgotten are dropped
// by a sweep every sweepEvery takes, so memory follows the keys active within their window.
// Past MaxKeys active keys a new key is let through uncounted (and Dropped says how many were):
// failing open keeps the server taking mail when someone sprays addresses from a whole IPv6
// range, while the keys already counted (the busy clients) stay limited.
type Memory struct {
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	keys    map[string]*bucket
	takes   int
	dropped int
}

type bucket struct {
	tat time.Time // theoretical arrival time: when every event counted is forgotten
	lim Limit     // the last limit taken under, for Usage
}

// sweepEvery is how many takes pass between two sweeps of forgotten keys.
const sweepEvery = 4096

// NewMemory returns an empty counter on the clock now (nil: time.Now), holding at most maxKeys
// keys (0: DefaultMaxKeys).
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{now: now, maxKeys: maxKeys, keys: make(map[string]*bucket)}
}

// interval is the time one event takes up: Window/N.
func (l Limit) interval() time.Duration { return max(l.Window/time.Duration(l.N), 1) }

// Take implements Counter.
func (m *Memory) Take(key string, n int, lim Limit) (bool, time.Duration) {
	if lim.Off() || n <= 0 {
		return true, 0
	}
	if n > lim.N {
		return false, lim.Window
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.takes++; m.takes >= sweepEvery {
		m.sweepLocked(now)
	}
	b := m.keys[key]
	tat := now
	if b != nil && b.tat.After(now) {
		tat = b.tat
	}
	// The events fit when, once added, the bucket holds no more than the window.
	next := tat.Add(time.Duration(n) * lim.interval())
	if over := next.Sub(now) - lim.Window; over > 0 {
		return false, over
	}
	if b == nil {
		if len(m.keys) >= m.maxKeys {
			m.sweepLocked(now)
			if len(m.keys) >= m.maxKeys {
				m.dropped++
				return true, 0
			}
		}
		b = &bucket{}
		m.keys[key] = b
	}
	b.tat, b.lim = next, lim
	return true, 0
}

// sweepLocked drops the keys whose events are all forgotten.
func (m *Memory) sweepLocked(now time.Time) {
	m.takes = 0
	for k, b := range m.keys {
		if !b.tat.After(now) {
			delete(m.keys, k)
		}
	}
}

// Len is how many keys are held (forgotten ones not yet swept included).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// Dropped is how many takes of new keys were let through uncounted because MaxKeys were held.
func (m *Memory) Dropped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Usage returns the keys that start with prefix and still count events, the closest to their
// limit first (then by key).
func (m *Memory) Usage(prefix string) []Usage {
	now := m.now()
	m.mu.Lock()
	var out []Usage
	for k, b := range m.keys {
		if !b.tat.After(now) || !strings.HasPrefix(k, prefix) {
			continue
		}
		iv := b.lim.interval()
		used := int((b.tat.Sub(now) + iv - 1) / iv)
		out = append(out, Usage{Key: k, Limit: b.lim.N, Window: b.lim.Window, Used: min(used, b.lim.N), Reset: b.tat})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		// Compare Used/Limit without division: a.Used*b.Limit against b.Used*a.Limit.
		if x, y := a.Used*b.Limit, b.Used*a.Limit; x != y {
			return x > y
		}
		return a.Key < b.Key
	})
	return out
}
