package app

import (
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// reloadState applies cfg to the parts of the server that hold state across sessions, keeping
// that state: the rate counters, the connections open, the failed AUTH attempts and blocks,
// the greylist, the SRS secret; and to the local domains and aliases. What it hands to the
// sessions goes into o. What can fail is built before anything changes (the greylist's delays
// come last in s.screen.options), so that an error changes nothing; Check has refused what
// would fail already. An SRS secret file gone bad only keeps the secret in force.
func (s *Server) reloadState(o *smtpserver.Options, cfg config.Config) error {
	var err error
	next := *o
	if s.rate != nil {
		// Over the same counters, which keep their counts.
		if next.Rate, err = ratePolicy(cfg.Rate, s.rate.split, s.rate.refused, s.log); err != nil {
			return err
		}
		if _, err := cfg.Rate.OutboundPerDomain(); err != nil {
			return err
		}
	}
	if s.screen != nil {
		sc := cfg
		sc.Delivery.Resolver = s.cfg.Delivery.Resolver // needs a restart, as for delivery
		if next.Screen, err = s.screen.options(sc); err != nil {
			return err
		}
	}
	if next.Limiter != nil {
		// The connections open stay counted against the new limits.
		next.Limiter.SetLimits(connLimits(cfg.Limits, cfg.Derive()))
	}
	if s.rate != nil {
		_ = s.rate.setOutbound(cfg.Rate) // checked above
	}
	if s.relay != nil {
		// RCPT, delivery's routing, the outbound limits, aliases and SRS ask it.
		s.relay.SetLocalDomains(cfg.Domains)
	}
	if s.auth != nil {
		if c, ok := s.auth.Credentials.(*credentials); ok {
			c.setDefaultDomain(cfg.Domains[0])
		}
		next.Auth = liveAuth(s.auth, cfg) // reloadauth.go
	}
	if s.aliases != nil {
		s.aliases.set(cfg)
		setSenders(&next, s.aliases)
		if err := s.aliases.srs.set(cfg); err != nil {
			// The mail forwarded goes on with the secret in force.
			s.log.Error("SRS not reloaded: the secret and settings in force stay", "err", err)
		}
	}
	*o = next
	return nil
}
