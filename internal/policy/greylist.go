package policy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// GreylistOptions configure a Greylist; zero fields take the defaults.
type GreylistOptions struct {
	// Delay is how long after the first attempt a retry is accepted. Default: 5m (postgrey's).
	Delay time.Duration
	// RetryWindow is how long a first attempt waits for its retry before it is forgotten.
	// Default: 48h (postgrey's).
	RetryWindow time.Duration
	// Expire is how long a triplet that passed stays allowed after it was last seen.
	// Default: 30 days.
	Expire time.Duration
	// MaxEntries bounds the triplets kept. Default: 100000.
	MaxEntries int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Greylist delays mail from an unknown (client network, sender, recipient) triplet (RFC 6647):
// the first attempt gets a temporary refusal, a retry after Delay passes, and the triplet then
// passes at once until it has not been seen for Expire. Most spam software never retries; a
// real server does. Clients are taken by network (IPv4 /24, IPv6 /64) because large senders
// retry from another address of the same pool.
//
// The triplets live in memory, per node, bounded by MaxEntries (when full, the expired go first,
// then random pending ones); Save and Load carry them across a restart. A retry that reaches
// another MX node, or a crash, costs the sender one more delay, which greylisting's senders
// tolerate by design.
type Greylist struct {
	now func() time.Time // opts.Now, which SetOptions keeps

	mu      sync.Mutex
	opts    GreylistOptions
	entries map[greyKey]greyEntry
}

type greyKey struct {
	net        netip.Prefix
	from, rcpt string // lower case; from "" for the null sender
}

type greyEntry struct {
	first  time.Time // the first attempt
	last   time.Time // the last pass (zero until the retry came)
	passed bool
}

// NewGreylist returns an empty greylist.
func NewGreylist(o GreylistOptions) *Greylist {
	o = o.withDefaults()
	return &Greylist{now: o.Now, opts: o, entries: map[greyKey]greyEntry{}}
}

// withDefaults is o with its zero fields at their defaults.
func (o GreylistOptions) withDefaults() GreylistOptions {
	if o.Delay <= 0 {
		o.Delay = 5 * time.Minute
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = 48 * time.Hour
	}
	if o.Expire <= 0 {
		o.Expire = 30 * 24 * time.Hour
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// SetOptions changes the delays and the bound (a reload): the triplets stay, and are judged
// by the new delays from the next check on; the clock stays the one NewGreylist was given.
func (g *Greylist) SetOptions(o GreylistOptions) {
	o.Now = g.now
	o = o.withDefaults()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opts = o
}

// greyNet is the network a client is greylisted by.
func greyNet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Check records an attempt from ip, from, to rcpt and reports whether it passes; if not, how
// long until a retry will.
func (g *Greylist) Check(ip netip.Addr, from, rcpt string) (wait time.Duration, pass bool) {
	k := greyKey{greyNet(ip), strings.ToLower(from), strings.ToLower(rcpt)}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.entries[k]
	if ok && g.expired(e, now) {
		ok = false
	}
	switch {
	case !ok:
		g.makeRoom(now)
		g.entries[k] = greyEntry{first: now}
		return g.opts.Delay, false
	case e.passed || now.Sub(e.first) >= g.opts.Delay:
		g.entries[k] = greyEntry{first: e.first, last: now, passed: true}
		return 0, true
	}
	return g.opts.Delay - now.Sub(e.first), false
}

// expired reports whether e is over: a pending attempt past the retry window, a passed triplet
// not seen for Expire.
func (g *Greylist) expired(e greyEntry, now time.Time) bool {
	if e.passed {
		return now.Sub(e.last) >= g.opts.Expire
	}
	return now.Sub(e.first) >= g.opts.RetryWindow
}

// makeRoom keeps the entries under the bound: the expired go first, then pending ones (map
// order is random, so a flood of new triplets cannot choose which), then any.
func (g *Greylist) makeRoom(now time.Time) {
	if len(g.entries) < g.opts.MaxEntries {
		return
	}
	for k, e := range g.entries {
		if g.expired(e, now) {
			delete(g.entries, k)
		}
	}
	for pass := 0; pass < 2 && len(g.entries) >= g.opts.MaxEntries; pass++ {
		for k, e := range g.entries {
			if len(g.entries) < g.opts.MaxEntries {
				break
			}
			if pass == 1 || !e.passed {
				delete(g.entries, k)
			}
		}
	}
}

// Len is how many triplets are kept.
func (g *Greylist) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

// greySaved is one triplet as Save writes it.
type greySaved struct {
	Net    string    `json:"net"`
	From   string    `json:"from"`
	Rcpt   string    `json:"rcpt"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last,omitzero"`
	Passed bool      `json:"passed,omitempty"`
}

// Save writes the triplets that have not expired, one JSON object a line, so that a restart
// does not make every sender wait again.
func (g *Greylist) Save(w io.Writer) error {
	now := g.now()
	g.mu.Lock()
	saved := make([]greySaved, 0, len(g.entries))
	for k, e := range g.entries {
		if !g.expired(e, now) {
			saved = append(saved, greySaved{Net: k.net.String(), From: k.from, Rcpt: k.rcpt, First: e.first, Last: e.last, Passed: e.passed})
		}
	}
	g.mu.Unlock()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, s := range saved {
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Load adds the triplets Save wrote, except the expired ones and those past MaxEntries, and
// returns how many it added. A damaged line ends the load with an error; what came before it
// is kept.
func (g *Greylist) Load(r io.Reader) (int, error) {
	now := g.now()
	dec := json.NewDecoder(r)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for len(g.entries) < g.opts.MaxEntries {
		var s greySaved
		if err := dec.Decode(&s); err == io.EOF {
			break
		} else if err != nil {
			return n, fmt.Errorf("policy: greylist: %w", err)
		}
		p, err := netip.ParsePrefix(s.Net)
		if err != nil {
			return n, fmt.Errorf("policy: greylist: %w", err)
		}
		e := greyEntry{first: s.First, last: s.Last, passed: s.Passed}
		if g.expired(e, now) {
			continue
		}
		g.entries[greyKey{p, s.From, s.Rcpt}] = e
		n++
	}
	return n, nil
}
