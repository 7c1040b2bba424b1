package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/resolver"
)

// DMARCCheckRequest is what tern dmarc check looks up: the DMARC policy of a From domain
// (checked with dmarc.Domain).
type DMARCCheckRequest struct {
	Domain   string
	Resolver string        // HOST:PORT, or empty for resolv.conf's servers
	Timeout  time.Duration // each DNS exchange (0: 5s)
}

// DMARCCheckCommand finds the DMARC record that governs a From domain as the MX listener does
// (RFC 7489 §6.6.3: the domain, then its organisational domain) and writes what it publishes,
// one "name: value" a line, or the result (none, temperror, permerror) and why.
func DMARCCheckCommand(ctx context.Context, r DMARCCheckRequest, w io.Writer) error {
	qt := spfQueryTimeout
	if r.Timeout > 0 {
		qt = r.Timeout
	}
	c, err := resolver.NewClient(r.Resolver, qt)
	if err != nil {
		return err
	}
	domain, err := dmarc.Domain(r.Domain)
	if err != nil {
		return err
	}
	d := (&dmarc.Checker{Resolver: resolver.New(c, resolver.Options{})}).Find(ctx, domain)
	p := d.Published
	if p == nil {
		_, err = fmt.Fprintf(w, "domain: %s\nresult: %s\nreason: %s\n", domain, d.Result, d.Reason)
		return err
	}
	at := "the domain itself"
	if p.Domain != domain {
		at = "its organisational domain"
	}
	ev := dmarc.Evaluation{FromDomain: domain, Published: p}
	_, err = fmt.Fprintf(w, "domain: %s\nrecord: _dmarc.%s (%s)\np: %s\nsp: %s\napplies: %s\npct: %d\nadkim: %s\naspf: %s\nfo: %s\nrua: %s\n",
		domain, p.Domain, at, p.P, p.SP, ev.PublishedPolicy(), p.Pct, p.ADKIM, p.ASPF, p.FO, strings.Join(p.RUA, " "))
	return err
}
