package dmarc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/tern-mail/tern/internal/resolver"
)

// Lookuper looks DNS records up: *resolver.Resolver, in tern (the resolver that --resolver
// configures, answers cached for their TTL).
type Lookuper interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Checker evaluates DMARC through a resolver. It is safe for concurrent use.
type Checker struct {
	Resolver Lookuper
	// Rand returns a number in [0, n) for pct= sampling (RFC 7489 §6.6.4); nil is
	// math/rand/v2.IntN. Tests make it deterministic.
	Rand func(n int) int
}

// Message is what an evaluation needs of a received message besides its policy: the
// underlying results, and what the aggregate report records of its origin.
type Message struct {
	SourceIP     string
	EnvelopeFrom string       // the MAIL FROM domain, the HELO name for the null sender
	SPF          AuthResult   // Domain is the domain SPF authenticated (mfrom or, null sender, helo)
	DKIM         []AuthResult // Result "pass" for each signature that verified
}

// Discovery is the outcome of policy discovery (RFC 7489 §6.6.3) for a message's From fields.
type Discovery struct {
	FromDomain string
	Published  *Published // nil when no record applies
	// Result is None, TempError or PermError when there is nothing to evaluate against
	// (Published nil); empty when Published is set.
	Result Result
	Reason string // why Result, in plain words
}

// Check evaluates the message whose From fields are from: Discover then Evaluate.
func (c *Checker) Check(ctx context.Context, from []string, m Message) Evaluation {
	return c.Evaluate(c.Discover(ctx, from), m)
}

// Discover finds the From domain (FromDomain) and the DMARC record that governs it: at
// _dmarc.<From domain>, else at _dmarc.<organisational domain> (RFC 7489 §6.6.3). A set of
// several DMARC records at a name, or none at either, means no policy; a failed lookup is
// temperror.
func (c *Checker) Discover(ctx context.Context, from []string) Discovery {
	domain, err := FromDomain(from)
	if err != nil {
		return Discovery{Result: PermError, Reason: strings.TrimPrefix(err.Error(), "dmarc: ")}
	}
	return c.Find(ctx, domain)
}

// Find finds the DMARC record that governs domain (a From domain, lower case, A-labels): at
// _dmarc.<domain>, else at _dmarc.<organisational domain> (RFC 7489 §6.6.3).
func (c *Checker) Find(ctx context.Context, domain string) Discovery {
	d := Discovery{FromDomain: domain}
	names := []string{domain}
	if org := OrgDomain(domain); org != domain {
		names = append(names, org)
	}
	for _, name := range names {
		pub, n, err := c.lookup(ctx, name)
		switch {
		case err != nil:
			d.Result, d.Reason = TempError, err.Error()
			return d
		case n > 1:
			// §6.6.3 step 5: several records end discovery, without looking further.
			d.Result, d.Reason = None, fmt.Sprintf("%d DMARC records at _dmarc.%s", n, name)
			return d
		case n == 1 && pub == nil:
			d.Result, d.Reason = None, "the DMARC record at _dmarc."+name+" has no valid p= and no rua="
			return d
		case pub != nil:
			pub.Domain = name
			d.Published = pub
			return d
		}
	}
	d.Result, d.Reason = None, "no DMARC record"
	return d
}

// lookup fetches the DMARC records at _dmarc.name: how many there are (TXT records that do not
// start with v=DMARC1 discarded) and, when one, what it publishes (nil if it has no policy).
func (c *Checker) lookup(ctx context.Context, name string) (*Published, int, error) {
	q := "_dmarc." + name
	a, err := c.Resolver.Lookup(ctx, dns.Fqdn(q), dns.TypeTXT)
	if err != nil {
		return nil, 0, fmt.Errorf("looking up %s: %w", q, err)
	}
	var pubs []Published
	n := 0
	for _, txt := range resolver.TXTs(a.RRs) {
		p, err := ParseRecord(txt)
		switch err {
		case ErrNotDMARC:
			continue
		case nil:
			pubs = append(pubs, p)
		}
		n++
	}
	if n == 1 && len(pubs) == 1 {
		return &pubs[0], 1, nil
	}
	return nil, n, nil
}

// Evaluate judges m against what d found: pass when SPF or a DKIM signature passed for a
// domain aligned with the From domain (RFC 7489 §3.1, §4.2), else fail with the policy the
// record asks for (sp= for a subdomain of the organisational domain that published it) after
// pct= sampling (§6.6.4). Disposition is Requested: local policy may change it afterwards.
func (c *Checker) Evaluate(d Discovery, m Message) Evaluation {
	ev := Evaluation{
		Result:       d.Result,
		FromDomain:   d.FromDomain,
		Published:    d.Published,
		Reason:       d.Reason,
		Requested:    PolicyNone,
		Disposition:  PolicyNone,
		SourceIP:     m.SourceIP,
		EnvelopeFrom: m.EnvelopeFrom,
		SPF:          m.SPF,
		DKIM:         m.DKIM,
	}
	pub := d.Published
	if pub == nil {
		return ev
	}
	// RFC 7489 §4.1: DMARC uses SPF's MAIL FROM identity, which for the null sender is
	// postmaster@<HELO> (RFC 7208 §2.4): the HELO domain is then the one to align.
	ev.SPFAligned = m.SPF.Result == "pass" && Aligned(m.SPF.Domain, d.FromDomain, pub.ASPF)
	for _, r := range m.DKIM {
		if r.Result == "pass" && Aligned(r.Domain, d.FromDomain, pub.ADKIM) {
			ev.DKIMAligned = true
		}
	}
	if ev.SPFAligned || ev.DKIMAligned {
		ev.Result = Pass
		return ev
	}
	if tempFailed(m, d.FromDomain, pub) {
		// RFC 7489 §6.6.2: with no aligned pass and an aligned identifier that could not be
		// checked for now, the failure is not known to be permanent and the policy does not
		// apply. Only aligned ones count: a temperror of a domain the sender chose (a
		// signature of its own, a MAIL FROM elsewhere) must not lift a p=reject.
		ev.Result = TempError
		ev.Reason = "no aligned pass, and SPF or DKIM of an aligned domain failed temporarily"
		return ev
	}
	ev.Result = Fail
	ev.Reason = "neither SPF nor DKIM passed for an aligned domain"
	p := ev.PublishedPolicy()
	if pub.Pct < 100 && c.random(100) >= pub.Pct {
		// §6.6.4: a message outside the sample gets the next policy down.
		switch p {
		case PolicyReject:
			p = PolicyQuarantine
		case PolicyQuarantine:
			p = PolicyNone
		}
		ev.Override = "sampled_out"
	}
	ev.Requested, ev.Disposition = p, p
	return ev
}

// tempFailed reports whether the SPF or a DKIM result of m is a temperror for a domain aligned
// with the From domain, or a DKIM temperror whose signing domain is not known (the verifier
// failed before reading it).
func tempFailed(m Message, from string, pub *Published) bool {
	if m.SPF.Result == string(TempError) && Aligned(m.SPF.Domain, from, pub.ASPF) {
		return true
	}
	for _, r := range m.DKIM {
		if r.Result == string(TempError) && (r.Domain == "" || Aligned(r.Domain, from, pub.ADKIM)) {
			return true
		}
	}
	return false
}

func (c *Checker) random(n int) int {
	if c.Rand != nil {
		return c.Rand(n)
	}
	return rand.IntN(n)
}

// PublishedPolicy is the policy the record asks for the From domain before pct= sampling: sp=
// when the record was found at the organisational domain of a subdomain, else p=; PolicyNone
// without a record.
func (e Evaluation) PublishedPolicy() Policy {
	switch {
	case e.Published == nil:
		return PolicyNone
	case e.FromDomain != e.Published.Domain && e.Published.SP != "":
		return e.Published.SP
	}
	return e.Published.P
}

// OrgDomain is the organisational domain of domain (RFC 7489 §3.2): its public suffix (by the
// Public Suffix List of golang.org/x/net/publicsuffix) and one label more; a public suffix
// itself is its own.
func OrgDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// Aligned reports whether an authenticated domain is aligned with the From domain (RFC 7489
// §3.1.1, §3.1.2): equal for mode "s" (strict), sharing the organisational domain otherwise
// (relaxed).
func Aligned(domain, from, mode string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	from = strings.ToLower(strings.TrimSuffix(from, "."))
	if domain == "" {
		return false
	}
	if mode == "s" {
		return domain == from
	}
	return OrgDomain(domain) == OrgDomain(from)
}
