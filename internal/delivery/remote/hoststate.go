package remote

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// DefaultDeadHostTTL is how long an address that could not be reached is skipped.
const DefaultDeadHostTTL = 30 * time.Second

// maxDeadHosts bounds the memory of dead addresses; past it, the expired ones are dropped, or
// all of them (see pruneLocked).
const maxDeadHosts = 10000

// maxHostDomains bounds the domains remembered per dead address (a server shared by many
// domains); ETRN for a domain not remembered leaves the address alone, for at most the TTL.
const maxHostDomains = 32

// hostStates remembers the addresses that could not be reached, so that a burst of messages
// to a server that is down costs one connection timeout and not one per message, holding every
// delivery worker meanwhile (Postfix calls such a destination dead). An address whose
// connection failed is skipped for the TTL; after that one delivery at a time probes it while
// the others are deferred at once, until a connection gets through.
type hostStates struct {
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	dead map[string]*deadHost // by "ip:port"
}

type deadHost struct {
	err     *delivery.Error // the failure that marked it
	at      time.Time
	probing bool // a delivery is connecting to it now
	// domains are the next-hop domains (or the relayhost) whose deliveries met it dead, so
	// that ETRN for a domain forgets only that domain's addresses.
	domains map[string]struct{}
}

// newHostStates returns the state of dead addresses, or nil (nothing is ever skipped) for a
// negative ttl.
func newHostStates(ttl time.Duration, now func() time.Time) *hostStates {
	if ttl < 0 {
		return nil
	}
	return &hostStates{ttl: ttl, now: now, dead: make(map[string]*deadHost)}
}

// admit says whether to connect to addr, a server of domain (the route's next hop). With a nil
// error the caller connects, and reports the outcome with done(probe, ...). Otherwise addr is
// dead, and err says why.
func (s *hostStates) admit(addr, domain string) (probe bool, err *delivery.Error) {
	if s == nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.dead[addr]
	if h != nil {
		h.addDomain(domain)
	}
	switch {
	case h == nil:
		return false, nil
	case s.now().Sub(h.at) < s.ttl || h.probing:
		return false, suspended(h.err)
	}
	h.probing = true
	return true, nil
}

// done records the outcome of a connection admit let through: failed is the error of a
// connection that never reached an SMTP reply, nil when the server answered (whatever it said).
func (s *hostStates) done(addr, domain string, probe bool, failed *delivery.Error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if failed == nil {
		delete(s.dead, addr)
		return
	}
	old := s.dead[addr]
	if old != nil && !probe && old.probing {
		old.addDomain(domain)
		return // a probe is under way: its outcome decides
	}
	if len(s.dead) >= maxDeadHosts {
		s.pruneLocked()
	}
	h := &deadHost{err: failed, at: s.now()}
	if old != nil {
		h.domains = old.domains
	}
	h.addDomain(domain)
	s.dead[addr] = h
}

func (h *deadHost) addDomain(domain string) {
	if h.domains == nil {
		h.domains = make(map[string]struct{})
	}
	if len(h.domains) < maxHostDomains {
		h.domains[domain] = struct{}{}
	}
}

// serves reports whether the address was met dead for domain, or with subdomains for a
// subdomain of it.
func (h *deadHost) serves(domain string, subdomains bool) bool {
	if _, ok := h.domains[domain]; ok {
		return true
	}
	if subdomains {
		for d := range h.domains {
			if strings.HasSuffix(d, "."+domain) {
				return true
			}
		}
	}
	return false
}

// pruneLocked drops the entries older than the TTL, or else all of them: a server down is
// then tried once more, which costs little.
func (s *hostStates) pruneLocked() {
	now := s.now()
	for k, h := range s.dead {
		if now.Sub(h.at) >= s.ttl && !h.probing {
			delete(s.dead, k)
		}
	}
	if len(s.dead) >= maxDeadHosts {
		clear(s.dead)
	}
}

// forget drops the dead addresses met for domain (and its subdomains, if asked); every one for
// domain "". It returns how many it dropped.
func (s *hostStates) forget(domain string, subdomains bool) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, h := range s.dead {
		if !h.probing && (domain == "" || h.serves(domain, subdomains)) {
			delete(s.dead, k)
			n++
		}
	}
	return n
}

// unreachable reports whether err is a connection that failed before any reply: refused,
// timed out, reset, no route. A server that answered, even with 421, is not dead.
func unreachable(err error) bool {
	var ce *smtpclient.Error
	return err != nil && (!errors.As(err, &ce) || ce.Code == 0)
}

// suspended is the error of a delivery not tried because the address is dead.
func suspended(cause *delivery.Error) *delivery.Error {
	e := *cause
	e.Permanent = false
	e.Msg = "delivery temporarily suspended: " + cause.Msg
	return &e
}
