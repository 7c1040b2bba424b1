package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// MTA-STS (RFC 8461): a domain publishes, over HTTPS, which MX hosts it has and whether senders
// must use verified TLS to them; a TXT record at _mta-sts.<domain> tells senders the policy's
// id, so that they can cache it and notice a change.

// Policy modes (RFC 8461 §5).
const (
	stsEnforce = "enforce"
	stsTesting = "testing"
	stsNone    = "none"
)

// Limits of RFC 8461 §3.2 and §3.3.
const (
	maxSTSPolicySize = 64 << 10 // "SHOULD ... 64 KB"
	maxSTSMaxAge     = 31557600 // one year, in seconds
	maxSTSCache      = 10000    // domains kept; beyond it, expired ones are dropped first
	stsPolicyPath    = "/.well-known/mta-sts.txt"
	stsMediaType     = "text/plain"
	stsVersion       = "STSv1"
	stsTXTPrefix     = "v=" + stsVersion
	maxSTSIDLen      = 32
	stsRecordPrefix  = "_mta-sts."
	stsPolicyHostPfx = "mta-sts."
)

// stsPolicy is a parsed policy.
type stsPolicy struct {
	Mode   string
	MX     []string // patterns: "mx.example.com" or "*.example.com", lower-case
	MaxAge time.Duration
}

// errSTSPolicy is the cause of every policy syntax error.
var errSTSPolicy = errors.New("remote: bad MTA-STS policy")

// parseSTSPolicy parses a policy file (RFC 8461 §3.2): "key: value" lines ending in LF or CRLF.
// version, mode and max_age are required, and so is at least one mx unless the mode is none.
// Unknown keys are ignored (extensions); for a repeated single-valued key the first counts.
func parseSTSPolicy(b []byte) (*stsPolicy, error) {
	if len(b) > maxSTSPolicySize {
		return nil, fmt.Errorf("%w: larger than %d octets", errSTSPolicy, maxSTSPolicySize)
	}
	p := &stsPolicy{}
	var version, mode, maxAge string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.TrimSpace(key) != key {
			return nil, fmt.Errorf("%w: line %q is not key: value", errSTSPolicy, line)
		}
		val = strings.Trim(val, " \t")
		switch key {
		case "version":
			if version == "" {
				version = val
			}
		case "mode":
			if mode == "" {
				mode = val
			}
		case "max_age":
			if maxAge == "" {
				maxAge = val
			}
		case "mx":
			pat, err := parseMXPattern(val)
			if err != nil {
				return nil, err
			}
			p.MX = append(p.MX, pat)
		}
	}
	if version != stsVersion {
		return nil, fmt.Errorf("%w: version %q, want %s", errSTSPolicy, version, stsVersion)
	}
	switch mode {
	case stsEnforce, stsTesting:
		if len(p.MX) == 0 {
			return nil, fmt.Errorf("%w: mode %s without mx", errSTSPolicy, mode)
		}
	case stsNone:
	default:
		return nil, fmt.Errorf("%w: mode %q", errSTSPolicy, mode)
	}
	p.Mode = mode
	if maxAge == "" || len(maxAge) > 10 || strings.Trim(maxAge, "0123456789") != "" {
		return nil, fmt.Errorf("%w: max_age %q", errSTSPolicy, maxAge)
	}
	n, err := strconv.ParseInt(maxAge, 10, 64)
	if err != nil || n > maxSTSMaxAge {
		return nil, fmt.Errorf("%w: max_age %q", errSTSPolicy, maxAge)
	}
	p.MaxAge = time.Duration(n) * time.Second
	return p, nil
}

// parseMXPattern checks an mx value: a domain name, or "*." and one (RFC 8461 §3.2, §4.1).
func parseMXPattern(s string) (string, error) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	name := strings.TrimPrefix(s, "*.")
	if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.ContainsAny(name, "*: \t") {
		return "", fmt.Errorf("%w: mx %q", errSTSPolicy, s)
	}
	return s, nil
}

// matches reports whether host (lower-case, no final dot) is one of the policy's MX hosts: a
// pattern matches itself, and "*.example.com" any name with exactly one more label in front
// (RFC 8461 §4.1).
func (p *stsPolicy) matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// parseSTSRecord parses a _mta-sts TXT record (RFC 8461 §3.1): "v=STSv1; id=...;" and returns
// the id. ok is false for a TXT record that is not an MTA-STS record at all.
func parseSTSRecord(txt string) (id string, ok bool, err error) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != stsTXTPrefix {
		return "", false, nil
	}
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue
		}
		k, v, found := strings.Cut(f, "=")
		if !found {
			return "", true, fmt.Errorf("%w: record field %q", errSTSPolicy, f)
		}
		if k == "id" && id == "" {
			id = v
		}
	}
	if id == "" || len(id) > maxSTSIDLen || !isAlnum(id) {
		return "", true, fmt.Errorf("%w: record id %q", errSTSPolicy, id)
	}
	return id, true, nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// stsCache keeps each domain's last good policy until its max_age runs out.
type stsCache struct {
	mu      sync.Mutex
	entries map[string]*stsEntry
}

type stsEntry struct {
	id      string
	policy  *stsPolicy
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
// either there is no policy. Failures are logged, never returned: MTA-STS can only make
// delivery stricter.
func (d *Deliverer) stsPolicy(ctx context.Context, domain string) *stsPolicy {
	now := d.opts.Now()
	cached := d.sts.get(domain, now)
	id, err := d.stsID(ctx, domain)
	if err != nil {
		d.log.Warn("remote: MTA-STS record", "remote", domain, "err", err)
	}
	if id == "" || (cached != nil && cached.id == id) {
		return cached.active()
	}
	p, err := d.fetchSTSPolicy(ctx, domain)
	if err != nil {
		d.log.Warn("remote: MTA-STS policy fetch failed", "remote", domain, "err", err)
		return cached.active()
	}
	e := &stsEntry{id: id, policy: p, expires: now.Add(p.MaxAge)}
	d.sts.put(domain, e, now)
	d.log.Info("remote: MTA-STS policy", "remote", domain, "mode", p.Mode, "id", id, "max_age", p.MaxAge)
	return e.active()
}

// active is the entry's policy if it asks for anything.
func (e *stsEntry) active() *stsPolicy {
	if e == nil || e.policy.Mode == stsNone {
		return nil
	}
	return e.policy
}

// stsID looks up the policy id in _mta-sts.<domain>; "" when there is no valid record (none,
// or more than one, RFC 8461 §3.1).
func (d *Deliverer) stsID(ctx context.Context, domain string) (string, error) {
	a, err := d.dns.lookup(ctx, stsRecordPrefix+domain, dns.TypeTXT)
	if err != nil {
		if isNXDomain(err) {
			return "", nil
		}
		return "", err
	}
	var ids []string
	for _, rr := range a.rrs {
		// The character-strings of one record are concatenated (RFC 7208 §3.3 does the same).
		id, ok, err := parseSTSRecord(strings.Join(rr.(*dns.TXT).Txt, ""))
		if !ok {
			continue
		}
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	if len(ids) > 1 {
		return "", fmt.Errorf("%w: %d records at %s%s", errSTSPolicy, len(ids), stsRecordPrefix, domain)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// fetchSTSPolicy gets https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3): a 200
// with text/plain, no redirects, at most maxSTSPolicySize octets, in Timeouts.PolicyFetch.
func (d *Deliverer) fetchSTSPolicy(ctx context.Context, domain string) (*stsPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeouts.PolicyFetch)
	defer cancel()
	url := "https://" + stsPolicyHostPfx + domain + stsPolicyPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // only read: a failed Close loses nothing
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != stsMediaType {
			return nil, fmt.Errorf("GET %s: content type %q, want %s", url, ct, stsMediaType)
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSTSPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return parseSTSPolicy(b)
}

// stsHTTPClient is c, or else a client that trusts roots and reaches the policy host at the
// addresses Options.Resolver gives (dialPolicyHost); either way it never follows a redirect.
func (d *Deliverer) stsHTTPClient(c *http.Client, roots *x509.CertPool) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	} else {
		cc.Transport = &http.Transport{
			DialContext:       d.dialPolicyHost,
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		}
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// dialPolicyHost connects to mta-sts.<domain> at the addresses that Options.Resolver gives,
// the resolver that found the policy's TXT record: the system's resolver may not know the
// name, or may give other answers, and an enforced policy the admin's resolver points at
// would then be skipped without a word (RFC 8461 allows delivery without a policy). Only the
// address comes from here: the transport still verifies the certificate against the name
// (TLS ServerName is the URL's host).
func (d *Deliverer) dialPolicyHost(ctx context.Context, network, addr string) (net.Conn, error) {
	name, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if d.opts.PolicyPort != 0 {
		port = strconv.Itoa(d.opts.PolicyPort)
	}
	h := &host{name: name}
	d.resolveHost(ctx, h)
	if h.err != nil {
		return nil, h.err
	}
	var dialer net.Dialer
	var errs []error
	for _, ip := range h.addrs {
		c, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
