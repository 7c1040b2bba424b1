package remote

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/resolver"
)

// MTA-STS (RFC 8461): a domain publishes, over HTTPS, which MX hosts it has and whether senders
// must use verified TLS to them; a TXT record at _mta-sts.<domain> tells senders the policy's
// id, so that they can cache it and notice a change.

// maxSTSCache is how many domains' policies are kept; beyond it, expired ones are dropped first.
const maxSTSCache = 10000

// stsCache keeps each domain's last good policy until its max_age runs out.
type stsCache struct {
	mu      sync.Mutex
	entries map[string]*stsEntry
}

type stsEntry struct {
	id      string
	policy  *mtasts.Policy
	expires time.Time
}

func newSTSCache() *stsCache { return &stsCache{entries: map[string]*stsEntry{}} }

func (c *stsCache) get(domain string, now time.Time) *stsEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[domain]
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	return e
}

func (c *stsCache) put(domain string, e *stsEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxSTSCache {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxSTSCache {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[domain] = e
}

// stsPolicy returns domain's MTA-STS policy in force (mode enforce or testing), or nil. It
// follows RFC 8461 §5.1: the TXT record's id tells whether the cached policy is current; a
// policy that cannot be fetched leaves the cached one in force until it expires, and without
// either there is no policy. Failures are logged, never returned as such: MTA-STS can only
// make delivery stricter. fetchErr is a failed fetch of the policy (not of its TXT record),
// for TLS-RPT.
func (d *Deliverer) stsPolicy(ctx context.Context, domain string) (p *mtasts.Policy, fetchErr error) {
	now := d.opts.Now()
	cached := d.sts.get(domain, now)
	id, err := d.stsID(ctx, domain)
	if err != nil {
		d.log.Warn("remote: MTA-STS record", "remote", domain, "err", err)
	}
	if id == "" || (cached != nil && cached.id == id) {
		return cached.active(), nil
	}
	p, err = d.fetchSTSPolicy(ctx, domain)
	if err != nil {
		d.log.Warn("remote: MTA-STS policy fetch failed", "remote", domain, "err", err)
		return cached.active(), err
	}
	e := &stsEntry{id: id, policy: p, expires: now.Add(p.MaxAge)}
	d.sts.put(domain, e, now)
	d.log.Info("remote: MTA-STS policy", "remote", domain, "mode", p.Mode, "id", id, "max_age", p.MaxAge)
	return e.active(), nil
}

// active is the entry's policy if it asks for anything.
func (e *stsEntry) active() *mtasts.Policy {
	if e == nil || e.policy.Mode == mtasts.ModeNone {
		return nil
	}
	return e.policy
}

// stsID looks up the policy id in _mta-sts.<domain>; "" when there is no valid record (none,
// or more than one, RFC 8461 §3.1).
func (d *Deliverer) stsID(ctx context.Context, domain string) (string, error) {
	a, err := d.dns.lookup(ctx, mtasts.RecordPrefix+domain, dns.TypeTXT)
	if err != nil {
		if isNXDomain(err) {
			return "", nil
		}
		return "", err
	}
	var ids []string
	for _, txt := range resolver.TXTs(a.rrs) {
		id, ok, err := mtasts.ParseRecord(txt)
		if !ok {
			continue
		}
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	if len(ids) > 1 {
		return "", fmt.Errorf("%w: %d records at %s%s", mtasts.ErrPolicy, len(ids), mtasts.RecordPrefix, domain)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// fetchSTSPolicy gets domain's policy (RFC 8461 §3.3) in Timeouts.PolicyFetch.
func (d *Deliverer) fetchSTSPolicy(ctx context.Context, domain string) (*mtasts.Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeouts.PolicyFetch)
	defer cancel()
	return mtasts.Fetch(ctx, d.http, domain)
}

// lookupPolicyHost finds the policy host's addresses with Options.Resolver, the resolver that
// found the policy's TXT record (see mtasts.NewClient).
func (d *Deliverer) lookupPolicyHost(ctx context.Context, name string) ([]netip.Addr, error) {
	h := &host{name: name}
	d.resolveHost(ctx, h)
	if h.err != nil {
		return nil, h.err
	}
	return h.addrs, nil
}
