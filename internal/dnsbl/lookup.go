package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// Resolver is what the lookups need of DNS: *resolver.Resolver, which caches for the TTL.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Lists are the configured sites, looked up together.
type Lists struct {
	Sites    []Site
	Resolver Resolver
}

// Hit is a site that listed the client.
type Hit struct {
	Site   Site
	Answer netip.Addr // the first answer that matched the site's filter
}

// Result is what the lists say of one client.
type Result struct {
	Score int   // the sum of the weights of the sites that listed it
	Hits  []Hit // those sites, in configuration order
	// Errors are the zones whose lookup failed (a timeout, SERVFAIL): they count for nothing,
	// so that a list that is down blocks nobody.
	Errors []error
}

// Blocked names the zones of the hits with a positive weight, in order, without repeats:
// what the reply to a refused client names.
func (r Result) Blocked() []string {
	var zones []string
	for _, h := range r.Hits {
		if h.Site.Weight > 0 && !slices.Contains(zones, h.Site.Zone) {
			zones = append(zones, h.Site.Zone)
		}
	}
	return zones
}

// errorAnswers is the block of answers that lists such as Spamhaus use for errors (a query
// through a public resolver, an over-quota user: 127.255.255.252 to .255), never a listing; a
// site without a filter would otherwise block every client.
var errorAnswers = netip.MustParsePrefix("127.255.255.0/24")

// Check looks ip up in every site's zone, in parallel, one query per zone however many sites
// share it, and sums the weights of the sites whose filter an answer matches.
func (l *Lists) Check(ctx context.Context, ip netip.Addr) Result {
	var zones []string
	for _, s := range l.Sites {
		if !slices.Contains(zones, s.Zone) {
			zones = append(zones, s.Zone)
		}
	}
	answers := make([][]netip.Addr, len(zones))
	errs := make([]error, len(zones))
	var wg sync.WaitGroup
	for i, z := range zones {
		wg.Add(1)
		// Owned by Check, which waits for it; the context bounds it.
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("dnsbl: %s: panic: %v", z, v)
				}
			}()
			answers[i], errs[i] = l.lookup(ctx, QueryName(ip, z))
		}()
	}
	wg.Wait()
	var res Result
	for _, err := range errs {
		if err != nil {
			res.Errors = append(res.Errors, err)
		}
	}
	for _, s := range l.Sites {
		i := slices.Index(zones, s.Zone)
		for _, a := range answers[i] {
			if s.Matches(a) {
				res.Hits = append(res.Hits, Hit{Site: s, Answer: a})
				res.Score += s.Weight
				break
			}
		}
	}
	return res
}

// lookup returns the A records of name, without the lists' error codes.
func (l *Lists) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	a, err := l.Resolver.Lookup(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range a.RRs {
		if ip, ok := resolver.Addr(rr); ok {
			if errorAnswers.Contains(ip) {
				return nil, fmt.Errorf("dnsbl: %s: the list answered %s, an error code (queries refused?)", name, ip)
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

// Name is the reverse DNS of a client.
type Name struct {
	// Name is the forward-confirmed name (lower case, no final dot): a PTR name of the client's
	// address whose A or AAAA records contain that address. Empty when there is none.
	Name string
	// PTR is the first name the PTR records gave, confirmed or not (for logs).
	PTR string
	// Temporary says a lookup failed: a name may exist (Postfix's 450 case).
	Temporary bool
}

// maxPTR bounds the names tried for one address (a PTR record set is rarely more than one).
const maxPTR = 10

// ReverseLookup finds ip's forward-confirmed name (FCrDNS): its PTR records, then the A (or
// AAAA) records of each name, until one contains ip.
func ReverseLookup(ctx context.Context, r Resolver, ip netip.Addr) Name {
	ip = ip.Unmap()
	a, err := r.Lookup(ctx, ReverseName(ip), dns.TypePTR)
	if err != nil {
		return Name{Temporary: true}
	}
	var n Name
	qtype := dns.TypeA
	if ip.Is6() {
		qtype = dns.TypeAAAA
	}
	for i, rr := range a.RRs {
		ptr, ok := rr.(*dns.PTR)
		if !ok || i >= maxPTR {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(ptr.Ptr, "."))
		if checkZone(name) != nil {
			continue // not a host name: it would go into the Received header
		}
		if n.PTR == "" {
			n.PTR = name
		}
		fwd, err := r.Lookup(ctx, dns.Fqdn(name), qtype)
		if err != nil {
			n.Temporary = true
			continue
		}
		for _, rr := range fwd.RRs {
			if addr, ok := resolver.Addr(rr); ok && addr == ip {
				return Name{Name: name, PTR: name}
			}
		}
	}
	return n
}
