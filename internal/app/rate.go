package app

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// rateLimits are the rate limits of a running server ([rate]): the counters of this node, the
// inbound policy over them (handed to the SMTP server) and the outbound throttle (handed to
// the queue).
type rateLimits struct {
	counters *ratelimit.Memory
	split    *splitCounter // counters, and the shared ones of several nodes (ratenodes.go)
	policy   *policy.Rate

	isLocal    func(domain string) bool
	refused    func(limit string) // the metrics' count of refusals, kept across reloads
	log        *slog.Logger
	mu         sync.Mutex
	outbound   ratelimit.Limit            // rate.outbound
	perDomain  map[string]ratelimit.Limit // rate.outbound_domains
	throttling map[string]bool            // domains whose mail waits, logged once until it goes again
}

// newRateLimits builds the rate limits cfg sets; isLocal tells the local domains, whose mail
// has no outbound limit; refused (nil: none) is told the name of each limit that refuses.
func newRateLimits(cfg config.Config, isLocal func(string) bool, refused func(string), log *slog.Logger) (*rateLimits, error) {
	rc := cfg.Rate
	counters := ratelimit.NewMemory(time.Now, 0)
	split := &splitCounter{local: counters}
	p, err := ratePolicy(rc, split, refused, log)
	if err != nil {
		return nil, err
	}
	r := &rateLimits{
		counters:   counters,
		split:      split,
		policy:     p,
		refused:    refused,
		isLocal:    isLocal,
		log:        log,
		throttling: map[string]bool{},
	}
	if err := r.setOutbound(rc); err != nil {
		return nil, err
	}
	return r, nil
}

// setOutbound makes rc's outbound limits those of the deliveries from now on (at start, and
// on a reload): over the same counters, so that what was delivered in the window still counts.
func (r *rateLimits) setOutbound(rc config.Rate) error {
	domains, err := rc.OutboundPerDomain()
	if err != nil {
		return err
	}
	perDomain := make(map[string]ratelimit.Limit, len(domains))
	for d, n := range domains {
		perDomain[d] = rateLimit(n, rc.OutboundWindow)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outbound, r.perDomain = rateLimit(rc.Outbound, rc.OutboundWindow), perDomain
	return nil
}

// rateLimit is n events in the window w.
func rateLimit(n int, w config.Duration) ratelimit.Limit {
	return ratelimit.Limit{N: n, Window: w.Duration}
}

// ratePolicy is the policy of the inbound limits rc sets (per client and per account) over
// counters; a reload makes a new one over the same counters, which keep their counts. refused
// (nil: none) is told the name of each limit that refuses.
func ratePolicy(rc config.Rate, counters ratelimit.Counter, refused func(string), log *slog.Logger) (*policy.Rate, error) {
	exempt, err := rc.ExemptPrefixes()
	if err != nil {
		return nil, err
	}
	return policy.NewRate(counters, policy.RateLimits{
		ClientConnections:    rateLimit(rc.ClientConnections, rc.ClientWindow),
		ClientMessages:       rateLimit(rc.ClientMessages, rc.ClientWindow),
		ClientRecipients:     rateLimit(rc.ClientRecipients, rc.ClientWindow),
		Exempt:               exempt,
		AccountMessages:      rateLimit(rc.AccountMessages, rc.AccountWindow),
		AccountRecipients:    rateLimit(rc.AccountRecipients, rc.AccountWindow),
		AccountDayMessages:   rateLimit(rc.AccountDayMessages, rc.AccountDayWindow),
		AccountDayRecipients: rateLimit(rc.AccountDayRecipients, rc.AccountDayWindow),
		ExemptAccounts:       rc.ExemptAccounts,
		Logger:               log,
		Refused:              refused,
	}), nil
}

// throttle is the queue's Throttle: a message whose pending recipients are all in one remote
// domain takes one from that domain's outbound limit, or waits until it fits. A message for
// several domains is not counted (as the queue's per-destination concurrency, it has no single
// destination), nor is local mail.
func (r *rateLimits) throttle(env *envelope.Envelope) time.Duration {
	domain := ""
	for _, rc := range env.Rcpts {
		if rc.Status != envelope.Pending {
			continue
		}
		d := strings.ToLower(envelope.Domain(rc.Addr))
		if r.isLocal(d) {
			continue
		}
		if domain != "" && d != domain {
			return 0
		}
		domain = d
	}
	if domain == "" {
		return 0
	}
	r.mu.Lock()
	lim, ok := r.perDomain[domain]
	if !ok {
		lim = r.outbound
	}
	r.mu.Unlock()
	wait, ok := r.policy.Outbound(domain, lim)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !ok && !r.throttling[domain]:
		r.throttling[domain] = true
		r.log.Info("outbound rate limit: mail to the domain waits in the queue", "domain", domain, "max", lim.N,
			"window", lim.Window, "retry_after", wait.Round(time.Millisecond), "msgid", env.ID)
	case ok && r.throttling[domain]:
		delete(r.throttling, domain)
		r.log.Info("outbound rate limit: mail to the domain goes again", "domain", domain)
	}
	return wait
}

// usage lists the counters now, closest to their limit first (tern limits show).
func (r *rateLimits) usage() []ratelimit.Usage { return r.counters.Usage("") }
