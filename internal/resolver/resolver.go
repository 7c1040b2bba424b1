package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Options tune a Resolver; the zero value of each field means its default.
type Options struct {
	// MaxEntries bounds the cache (default 10000 answers).
	MaxEntries int
	// MaxTTL caps how long an answer is kept, whatever its TTL says (default 1 hour).
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long a name that does not exist, or has no records of the type
	// asked, is remembered (default 15 minutes; RFC 2308 §5 suggests one to three hours at
	// most, and a record that has just been published should not stay unseen for that long).
	MaxNegativeTTL time.Duration
	// FailureTTL is how long a lookup that got no final word (SERVFAIL, a refusal, no answer
	// in time) is remembered as failing before the servers are asked again (default 5 seconds,
	// as unbound keeps a SERVFAIL; RFC 2308 §7 allows up to 5 minutes). Without it every
	// message would ask a dead or failing resolver again, each paying its refusal or timeout.
	FailureTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Resolver looks names up through a Client and caches the answers for their TTL. It is safe
// for concurrent use.
type Resolver struct {
	c    *Client
	opts Options

	mu       sync.Mutex
	cache    map[cacheKey]cacheEntry
	inflight map[cacheKey]*flight
	// waits, when set (by tests), is called as a lookup starts waiting for another's query.
	waits func()
}

// flight is a lookup under way, which concurrent lookups of the same name and type wait for
// instead of asking the servers again.
type flight struct {
	done   chan struct{}
	a      Answer
	err    error
	shared bool // a and err hold for the waiters too (false: the asker's own context ended)
}

type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

type cacheEntry struct {
	a       Answer
	err     error // a remembered failure (see Options.FailureTTL)
	expires time.Time
}

// Answer is the records of one type that a lookup returned. Its records are shared with the
// cache: callers must not change them.
type Answer struct {
	RRs      []dns.RR // the records of the asked type (their owner may be a CNAME's target)
	NXDomain bool     // the name does not exist (RCODE 3)
	Secure   bool     // the server set the AD bit
}

// TXTs is the text of each TXT record among rrs, its character-strings joined without
// separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2, RFC 7489 §6.6.3, RFC 8461 §3.1 all read a
// record so); other records are skipped.
func TXTs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// Addr is the address of an A or AAAA record (IPv4-mapped addresses unmapped); ok is false
// for any other record.
func Addr(rr dns.RR) (addr netip.Addr, ok bool) {
	switch rr := rr.(type) {
	case *dns.AAAA:
		addr, ok = netip.AddrFromSlice(rr.AAAA)
	case *dns.A:
		addr, ok = netip.AddrFromSlice(rr.A)
	}
	return addr.Unmap(), ok
}

// Void reports whether the lookup found nothing: the name does not exist or has no records of
// the type asked. RFC 7208 §4.6.4 limits such "void lookups" in an SPF evaluation.
func (a Answer) Void() bool { return len(a.RRs) == 0 }

// Error is a lookup that got no final word about the name: a timeout, SERVFAIL, a refusal.
// It is temporary by nature (an SPF temperror, for one).
type Error struct {
	Name  string
	Qtype uint16
	Err   error
	// msg is Error's text, made once: a remembered failure is returned to every lookup of its
	// name while the servers are down, and each caller (SPF's, for one) asks for the text.
	msg string
}

func newError(name string, qtype uint16, err error) *Error {
	e := &Error{Name: name, Qtype: qtype, Err: err}
	e.msg = e.format()
	return e
}

func (e *Error) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return e.format()
}

func (e *Error) format() string {
	return fmt.Sprintf("DNS %s %s: %v", dns.TypeToString[e.Qtype], strings.TrimSuffix(e.Name, "."), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether no server answered in time.
func (e *Error) Timeout() bool { return errors.Is(e.Err, ErrTimeout) }

// New makes a caching resolver over c.
func New(c *Client, opts Options) *Resolver {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = time.Hour
	}
	if opts.MaxNegativeTTL <= 0 {
		opts.MaxNegativeTTL = 15 * time.Minute
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Resolver{c: c, opts: opts, cache: map[cacheKey]cacheEntry{}, inflight: map[cacheKey]*flight{}}
}

// Lookup asks for name's records of type qtype, from the cache while they are fresh. A name
// that does not exist, or has no such records, is an Answer (see Void), not an error; the
// error is an *Error, remembered for Options.FailureTTL unless it was ctx that ended the
// lookup. Concurrent lookups of one name and type share one query.
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) (Answer, error) {
	k := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	for {
		now := r.opts.Now()
		r.mu.Lock()
		if e, ok := r.cache[k]; ok && now.Before(e.expires) {
			r.mu.Unlock()
			return e.a, e.err
		}
		f, ok := r.inflight[k]
		if !ok {
			f = &flight{done: make(chan struct{})}
			r.inflight[k] = f
			r.mu.Unlock()
			r.ask(ctx, k, f)
			return f.a, f.err
		}
		r.mu.Unlock()
		if r.waits != nil {
			r.waits()
		}
		select {
		case <-f.done:
			if f.shared {
				return f.a, f.err
			}
			// The asker gave up (its context ended): ask for ourselves.
		case <-ctx.Done():
			return Answer{}, &Error{Name: k.name, Qtype: qtype, Err: ctx.Err()}
		}
	}
}

// ask queries the servers for k, caches what may be cached, and ends f.
func (r *Resolver) ask(ctx context.Context, k cacheKey, f *flight) {
	now := r.opts.Now()
	e := cacheEntry{}
	ttl := time.Duration(0)
	resp, err := r.c.Exchange(ctx, k.name, k.qtype)
	switch {
	case err != nil:
		e.err = newError(k.name, k.qtype, err)
		if ctx.Err() == nil {
			ttl = r.opts.FailureTTL
		}
	default:
		e.a = Answer{NXDomain: resp.Rcode == dns.RcodeNameError, Secure: resp.AuthenticatedData}
		if !e.a.NXDomain {
			for _, rr := range resp.Answer {
				if rr.Header().Rrtype == k.qtype {
					e.a.RRs = append(e.a.RRs, rr)
				}
			}
		}
		ttl = r.ttl(resp, e.a)
	}
	f.a, f.err, f.shared = e.a, e.err, err == nil || ctx.Err() == nil
	if ttl > 0 {
		e.expires = now.Add(ttl)
		r.store(k, e, now)
	}
	r.mu.Lock()
	delete(r.inflight, k)
	r.mu.Unlock()
	close(f.done)
}

// ttl is how long an answer may be kept: the least TTL of its records (the CNAMEs that led to
// them included); for a negative answer, the least of the SOA's TTL and its MINIMUM field
// (RFC 2308 §5), and nothing without a SOA.
func (r *Resolver) ttl(resp *dns.Msg, a Answer) time.Duration {
	if !a.Void() {
		least := ^uint32(0)
		for _, rr := range resp.Answer {
			least = min(least, rr.Header().Ttl)
		}
		return min(time.Duration(least)*time.Second, r.opts.MaxTTL)
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, r.opts.MaxNegativeTTL)
		}
	}
	return 0
}

// store keeps e, making room when the cache is full: the expired entries go first, and when
// none has expired an eighth of the entries, whichever the map yields, so that a full cache
// is not swept at every insert.
func (r *Resolver) store(k cacheKey, e cacheEntry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cache[k]; !ok && len(r.cache) >= r.opts.MaxEntries {
		for ck, ce := range r.cache {
			if !now.Before(ce.expires) {
				delete(r.cache, ck)
			}
		}
		for ck := range r.cache {
			if len(r.cache) < r.opts.MaxEntries-r.opts.MaxEntries/8 {
				break
			}
			delete(r.cache, ck)
		}
	}
	r.cache[k] = e
}

// Len is the number of answers in the cache.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cache)
}
