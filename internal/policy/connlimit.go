package policy

import (
	"log/slog"
	"net/netip"
	"sync"

	"github.com/tern-mail/tern/internal/smtp"
)

// ConnLimits configure a ConnLimiter. A zero field means no such limit.
type ConnLimits struct {
	// Max is the most connections at once, in total.
	Max int
	// PerIP is the most connections at once from one client (IPv4 address or IPv6 /64).
	PerIP int
	// Reserved are the last of the Max slots, kept for clients that hold few. Once no more than
	// Reserved slots are free (the server is busy), a client that already holds BusyPerIP
	// connections is refused, and the MX listener takes no more than the first half of the
	// reserve: the second half is for the submission listeners.
	Reserved int
	// BusyPerIP is how many connections a client may hold and still get one more while the
	// server is busy.
	BusyPerIP int
	// Logger gets a line when the server becomes busy and when it no longer is. Nil: discard.
	Logger *slog.Logger
}

// ConnKind says what a connection is for, which decides its share of the reserve.
type ConnKind uint8

const (
	ConnMX         ConnKind = iota // port 25: other servers, and anyone else
	ConnSubmission                 // the submission ports: users, who authenticate
)

// ConnLimiter caps concurrent connections in total and per client, and keeps room for new
// clients and for the submission listeners when the server fills up, as Postfix's postscreen
// keeps room for clients that do not hog it: ten addresses holding a hundred connections each
// must not lock every other client out. IPv6 clients are counted per /64, since one host
// usually holds a whole /64 and could otherwise open unlimited connections.
type ConnLimiter struct {
	lim ConnLimits
	log *slog.Logger

	mu      sync.Mutex
	total   int
	counts  map[netip.Prefix]int
	busy    bool // a "busy" line was logged and its end not yet
	refused int  // connections refused since then
}

// NewConnLimiter returns a limiter.
func NewConnLimiter(lim ConnLimits) *ConnLimiter {
	l := &ConnLimiter{lim: lim, log: lim.Logger, counts: make(map[netip.Prefix]int)}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
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
func (l *ConnLimiter) Acquire(ip netip.Addr, kind ConnKind) (release func(), reply smtp.Reply, ok bool) {
	key := clientKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if reply, ok := l.admit(key, kind); !ok {
		if l.busy {
			l.refused++
		}
		return nil, reply, false
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
			if l.busy && (l.free() > 2*l.lim.Reserved || l.total == 0) {
				l.busy = false
				l.log.Info("connections: no longer busy", "connections", l.total, "refused", l.refused)
			}
		})
	}, smtp.Reply{}, true
}

// admit decides on one more connection from key.
func (l *ConnLimiter) admit(key netip.Prefix, kind ConnKind) (smtp.Reply, bool) {
	held := l.counts[key]
	switch {
	case l.lim.Max > 0 && l.total >= l.lim.Max:
		return smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Too many connections, try again later"), false
	case l.lim.PerIP > 0 && held >= l.lim.PerIP:
		return smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Too many connections from "+prefixString(key)), false
	}
	free := l.free()
	if l.lim.Max <= 0 || l.lim.Reserved <= 0 || free > l.lim.Reserved {
		return smtp.Reply{}, true
	}
	if !l.busy {
		l.busy = true
		l.refused = 0
		l.log.Warn("connections: busy, keeping the reserve for clients holding few", "connections", l.total,
			"reserved", l.lim.Reserved, "busy_per_ip", l.lim.BusyPerIP)
	}
	switch {
	case l.lim.BusyPerIP > 0 && held >= l.lim.BusyPerIP:
		return smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Server busy: too many connections from "+prefixString(key)+", try again later"), false
	case kind == ConnMX && free <= l.lim.Reserved/2:
		return smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Server busy, try again later"), false
	}
	return smtp.Reply{}, true
}

// SetLimits changes the limits (a reload; the logger stays): the connections open stay
// counted, so that a lower limit refuses new ones until enough of them end.
func (l *ConnLimiter) SetLimits(lim ConnLimits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim.Logger = l.lim.Logger
	l.lim = lim
}

// free is how many slots are left (meaningless without Max).
func (l *ConnLimiter) free() int { return l.lim.Max - l.total }
