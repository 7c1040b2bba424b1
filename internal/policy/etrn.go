package policy

import (
	"cmp"
	"net/netip"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// ETRNLimits configure an ETRN policy. Zero fields take the defaults below.
type ETRNLimits struct {
	// Burst is how many ETRN requests a client (IPv4 address or IPv6 /64) may make at once;
	// after that one more every Interval.
	Burst    int
	Interval time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Defaults for ETRNLimits: three at once, then one every 20 seconds (three a minute).
const (
	DefaultETRNBurst    = 3
	DefaultETRNInterval = 20 * time.Second
)

// ETRN decides who may ask for a queue run with ETRN (RFC 1985), and how often.
//
// ETRN makes the queued mail of a domain due and has remote delivery try that domain's servers
// again, even those found down lately: from anyone, and as often as they like, it would let any
// client force retry storms. Postfix allows it only for its fast_flush_domains (by default
// $relay_domains: the domains it is a backup MX for, whose mail waits for their own server),
// and smtpd_etrn_restrictions can narrow it further. tern is never a backup MX: it relays for
// no domain on behalf of unauthenticated clients, so no domain qualifies, and ETRN is left to
// authenticated clients, who may relay anywhere. A local domain is never a node (its mail is
// delivered here), and each client gets a few requests a minute.
type ETRN struct {
	isLocal func(domain string) bool
	lim     ETRNLimits

	mu      sync.Mutex
	buckets map[netip.Prefix]*etrnBucket
}

// etrnBucket is one client's budget: tokens as of at.
type etrnBucket struct {
	tokens float64
	at     time.Time
}

// withDefaults returns lim with each unset field (zero, or a negative number) at its default.
func (lim ETRNLimits) withDefaults() ETRNLimits {
	// cmp.Or(max(v, 0), def): def unless v is positive.
	lim.Burst = cmp.Or(max(lim.Burst, 0), DefaultETRNBurst)
	lim.Interval = cmp.Or(max(lim.Interval, 0), DefaultETRNInterval)
	if lim.Now == nil {
		lim.Now = time.Now
	}
	return lim
}

// NewETRN returns the ETRN policy; isLocal tells the local domains (Relay.IsLocal).
func NewETRN(isLocal func(domain string) bool, lim ETRNLimits) *ETRN {
	return &ETRN{isLocal: isLocal, lim: lim.withDefaults(), buckets: make(map[netip.Prefix]*etrnBucket)}
}

// ETRNRequest is one ETRN command as the server parsed it (RFC 1985 §3): the policy decides
// on the domain, and names the node in its replies as the client gave it.
type ETRNRequest struct {
	// Node is the argument as the client gave it: "domain", "@domain" or "#domain".
	Node string
	// Domain is the domain the node names, syntax checked.
	Domain string
	// Subdomains is set for "@domain": the domain and its subdomains.
	Subdomains bool
}

// CheckETRN decides on the ETRN request r from c. A positive reply (its text unused) means
// go ahead; otherwise the reply says why not: 459 4.7.1 for a node that may not be asked
// for, 458 4.7.0 over the rate.
func (e *ETRN) CheckETRN(c Client, r ETRNRequest) smtp.Reply {
	node := r.Node
	switch {
	case e.isLocal != nil && e.isLocal(r.Domain):
		return smtp.R(smtp.CodeETRNNotAllowed, smtp.EnhNotAuthorized, "Node "+node+" not allowed: mail for it is delivered here")
	case !c.Authenticated:
		return smtp.R(smtp.CodeETRNNotAllowed, smtp.EnhNotAuthorized, "Node "+node+" not allowed: ETRN requires authentication")
	case !e.take(c.IP):
		return smtp.R(smtp.CodeETRNUnable, smtp.EnhSecurityOther, "Unable to queue messages for node "+node+": too many ETRN requests, try again later")
	}
	return smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok")
}

// take spends one of ip's tokens; false when none is left.
func (e *ETRN) take(ip netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.lim.Now()
	key := clientKey(ip)
	b := e.buckets[key]
	if b == nil {
		if len(e.buckets) >= 4096 {
			e.sweep(now)
		}
		b = &etrnBucket{tokens: float64(e.lim.Burst), at: now}
		e.buckets[key] = b
	}
	b.tokens = e.refill(b, now)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (e *ETRN) refill(b *etrnBucket, now time.Time) float64 {
	return min(float64(e.lim.Burst), b.tokens+float64(max(now.Sub(b.at), 0))/float64(e.lim.Interval))
}

// sweep drops the clients whose budget is whole again: they are as good as new.
func (e *ETRN) sweep(now time.Time) {
	for k, b := range e.buckets {
		if e.refill(b, now) >= float64(e.lim.Burst) {
			delete(e.buckets, k)
		}
	}
}
