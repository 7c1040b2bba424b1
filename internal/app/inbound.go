package app

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/spf"
)

// inboundQueryTimeout bounds one DNS query of the inbound checks, like spfQueryTimeout: a server
// that does not answer leaves time for the next one within SPF's 20 seconds.
const inboundQueryTimeout = 5 * time.Second

// inboundAuth builds the SPF and DKIM checks of the smtp listener (inbound.*), over a resolver
// of their own on delivery.resolver (answers cached for their TTL). The server keeps removing
// forged Authentication-Results fields when the checks are off.
func inboundAuth(cfg config.Config) (*smtpserver.Authentication, error) {
	c, err := resolver.NewClient(cfg.Delivery.Resolver, inboundQueryTimeout)
	if err != nil {
		return nil, fmt.Errorf("inbound checks: %w", err)
	}
	r := resolver.New(c, resolver.Options{})
	return &smtpserver.Authentication{
		SPF:    spf.New(r, 0),
		DKIM:   dkim.Verifier{Resolver: dkimDNS{r}},
		DMARC:  &dmarc.Checker{Resolver: r},
		Policy: inboundPolicy(cfg.Inbound),
	}, nil
}

// inboundPolicy is policy.Inbound for a validated inbound section.
func inboundPolicy(in config.Inbound) policy.Inbound {
	p := policy.Inbound{Check: in.SPFDKIM, Defer: in.TempError == "defer", DMARCDefault: policy.DMARCMode(in.DMARC)}
	overrides, _ := in.DMARCOverrides() // validated with the config
	if len(overrides) > 0 {
		p.DMARCDomains = map[string]policy.DMARCMode{}
		for d, m := range overrides {
			p.DMARCDomains[d] = policy.DMARCMode(m)
		}
	}
	return p
}

// dkimDNS is dkim's Resolver over tern's resolver: the strings of each TXT record are joined
// (RFC 6376 §3.6.2.2); a name that does not exist or has no TXT record is dkim.ErrNoRecord,
// any failure of the lookup temporary.
type dkimDNS struct{ r *resolver.Resolver }

func (d dkimDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := d.r.Lookup(ctx, dns.Fqdn(name), dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	txts := resolver.TXTs(a.RRs)
	if len(txts) == 0 {
		return nil, fmt.Errorf("%s: %w", name, dkim.ErrNoRecord)
	}
	return txts, nil
}
