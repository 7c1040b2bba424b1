package app

import (
	"fmt"
	"log/slog"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// screenOptions builds the checks of the smtp listener before DATA (screen.*): the DNS lists
// and reverse lookups over a resolver of their own on delivery.resolver (answers cached for
// their TTL), the greylist in memory. Nothing is built for what is off.
func screenOptions(cfg config.Config, log *slog.Logger) (smtpserver.ScreenOptions, error) {
	sc := cfg.Screen
	o := smtpserver.ScreenOptions{PregreetWait: sc.PregreetWait.Duration}
	p := &policy.Screen{
		Threshold:           sc.DNSBLThreshold,
		AllowThreshold:      sc.DNSBLAllowlistThreshold,
		RejectUnknownClient: sc.RejectUnknownClient,
		Logger:              log,
	}
	var sites []dnsbl.Site
	for _, text := range sc.DNSBLSites {
		site, err := dnsbl.ParseSite(text)
		if err != nil {
			return o, fmt.Errorf("screen.dnsbl_sites: %w", err)
		}
		sites = append(sites, site)
	}
	var r *resolver.Resolver
	if len(sites) > 0 || sc.ReverseDNS || sc.RejectUnknownClient {
		c, err := resolver.NewClient(cfg.Delivery.Resolver, inboundQueryTimeout)
		if err != nil {
			return o, fmt.Errorf("screen: %w", err)
		}
		r = resolver.New(c, resolver.Options{})
	}
	if len(sites) > 0 {
		p.Lists = &dnsbl.Lists{Sites: sites, Resolver: r}
	}
	if sc.ReverseDNS || sc.RejectUnknownClient {
		p.Resolver = r
	}
	if sc.Greylist {
		exempt, err := sc.GreylistExemptPrefixes()
		if err != nil {
			return o, err
		}
		p.Greylist = policy.NewGreylist(policy.GreylistOptions{
			Delay:       sc.GreylistDelay.Duration,
			RetryWindow: sc.GreylistRetryWindow.Duration,
			Expire:      sc.GreylistExpire.Duration,
			Exempt:      exempt,
			MaxEntries:  sc.GreylistMaxEntries,
		})
	}
	if p.Active() {
		o.Screener = p
	}
	return o, nil
}
