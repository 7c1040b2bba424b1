package app

import (
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dkim"
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
		DKIM:   dkim.Verifier{Resolver: dkim.DNS{L: r}},
		Policy: policy.Inbound{Check: cfg.Inbound.SPFDKIM, Defer: cfg.Inbound.TempError == "defer"},
	}, nil
}
