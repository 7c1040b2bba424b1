package policy

import (
	"net/netip"
	"sync"

	"github.com/tern-mail/tern/internal/smtp"
)

// ConnLimiter caps concurrent connections in total and per client. IPv6 clients are counted per
// /64, since one host usually holds a whole /64 and could otherwise open unlimited connections.
type ConnLimiter struct {
	max, perIP int

	mu     sync.Mutex
	total  int
	counts map[netip.Prefix]int
}

// NewConnLimiter returns a limiter; a limit of 0 means no limit.
func NewConnLimiter(max, perIP int) *ConnLimiter {
	return &ConnLimiter{max: max, perIP: perIP, counts: make(map[netip.Prefix]int)}
}

func clientKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	p, _ := ip.Prefix(32)
	return p
}

// Acquire counts a new connection from ip. When it is over a limit, ok is false and reply is the
// 421 to send before closing; otherwise release must be called once when the connection ends.
func (l *ConnLimiter) Acquire(ip netip.Addr) (release func(), reply smtp.Reply, ok bool) {
	key := clientKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return nil, smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Too many connections, try again later"), false
	}
	if l.perIP > 0 && l.counts[key] >= l.perIP {
		return nil, smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Too many connections from "+ip.Unmap().String()), false
	}
	l.total++
	l.counts[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.counts[key]--; l.counts[key] <= 0 {
				delete(l.counts, key)
			}
		})
	}, smtp.Reply{}, true
}
