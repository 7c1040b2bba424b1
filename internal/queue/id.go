package queue

import (
	"strconv"
	"sync"
	"time"
)

// idGen makes queue ids: the time in microseconds, in upper-case hex (13 digits until the year
// 2112), like Postfix's ids and sortable by arrival. Ids never repeat: each is at least one more
// than the last, and after a restart more than any id in the log.
type idGen struct {
	mu   sync.Mutex
	last uint64
}

func (g *idGen) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := uint64(time.Now().UnixMicro())
	if now <= g.last {
		now = g.last + 1
	}
	g.last = now
	return formatID(now)
}

// observe raises the floor to an id seen in the log.
func (g *idGen) observe(id string) {
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last = max(g.last, n)
}

func formatID(n uint64) string {
	b := strconv.AppendUint(make([]byte, 0, 16), n, 16)
	for i, c := range b {
		if c >= 'a' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// validID reports whether id looks like one of ours; it becomes a file name, so this matters.
func validID(id string) bool {
	if len(id) < 10 || len(id) > 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
