package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/smtp"
)

// tlsLevel is how much TLS a connection must have, weakest first.
type tlsLevel int

const (
	levelMay     tlsLevel = iota // STARTTLS if offered, any certificate
	levelEncrypt                 // TLS required, any certificate
	levelVerify                  // TLS required, PKIX-verified for names
	levelDANE                    // TLS required, matched against TLSA records
)

func (l tlsLevel) String() string {
	return [...]string{"may", "encrypt", "verify", "dane"}[l]
}

// tlsPlan is the TLS policy for one host.
type tlsPlan struct {
	level  tlsLevel
	source string   // what asked for it: "default", "policy", "mta-sts", "dane", "requiretls"
	names  []string // reference identifiers for verify and DANE-TA
	tlsa   []*dns.TLSA
	// testing is an MTA-STS policy in mode testing: its failures are logged, not enforced.
	testing *mtasts.Policy

	// For TLS-RPT (tlsreport.go): the policy that applies, its type being tlsa when
	// tlsaAll is not empty, else sts when sts is not nil.
	tlsaAll []*dns.TLSA    // the validated TLSA RRset, usable records or not
	sts     *mtasts.Policy // the MTA-STS policy in force (enforce or testing)
	stsMiss bool           // a testing policy does not list the host
}

// Errors of the TLS checks, wrapped in the handshake's error.
var (
	errNoTLSAMatch  = errors.New("remote: no TLSA record matches the server's certificate")
	errNoPeerCert   = errors.New("remote: server sent no certificate")
	errNotInSTSList = errors.New("remote: MX host not listed in the MTA-STS policy")
	errTLSALookup   = errors.New("remote: TLSA lookup failed")
)

// tlsPlan decides the TLS policy for h (see the package doc). An error means the host must not
// be used: its TLSA lookup failed, or an enforced MTA-STS policy does not list it.
func (d *Deliverer) tlsPlan(ctx context.Context, rt *route, h *host, sts *mtasts.Policy, reqTLS bool) (*tlsPlan, *delivery.Error) {
	plan := &tlsPlan{level: levelMay, source: "default", names: []string{h.name}}
	if mode, ok := d.policyFor(rt.domain); ok {
		plan.level, plan.source = levelOf(mode), "policy"
	}
	recs, all, err := d.tlsaRecords(ctx, rt, h)
	plan.tlsaAll = all
	switch {
	case err != nil:
		return nil, err
	case len(recs) > 0:
		// RFC 8461 §2: a host with DANE records is held to them, not to MTA-STS.
		plan.level, plan.source, plan.tlsa = levelDANE, "dane", recs
		// RFC 7672 §3.2.2: for DANE-TA the reference identifiers are the TLSA base domain
		// and the next-hop domain.
		if !rt.relay && rt.domain != h.name {
			plan.names = append(plan.names, rt.domain)
		}
		return plan, nil
	case len(all) > 0 && plan.level < levelEncrypt:
		// RFC 7672 §2.2: records exist but none is usable: TLS is still required, without
		// authentication.
		plan.level, plan.source = levelEncrypt, "dane"
	}
	if sts != nil {
		plan.sts = sts
		switch {
		case sts.Mode == mtasts.ModeEnforce && !sts.Matches(h.name):
			return nil, &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhCryptoFailure, RemoteMTA: h.name,
				Msg: "MX host " + h.name + " is not allowed by the MTA-STS policy of " + rt.domain,
				Err: fmt.Errorf("%w: %s not in %v", errNotInSTSList, h.name, sts.MX)}
		case sts.Mode == mtasts.ModeEnforce && plan.level < levelVerify:
			plan.level, plan.source = levelVerify, "mta-sts"
		case sts.Mode == mtasts.ModeTesting:
			plan.testing = sts
			if !sts.Matches(h.name) {
				plan.stsMiss = true
				d.log.Warn("remote: MTA-STS testing: MX host not in policy", "remote", h.name, "domain", rt.domain)
			}
		}
	}
	if reqTLS && plan.level < levelVerify {
		plan.level, plan.source = levelVerify, "requiretls"
	}
	return plan, nil
}

// tlsaRecords looks up h's usable TLSA records when DANE applies, that is when the route to the
// host was validated (RFC 7672 §2.2): the MX answer (for an implicit MX, the answer that there
// is none; for the relayhost, nothing) and the host's addresses. all is the validated TLSA
// RRset, usable or not.
func (d *Deliverer) tlsaRecords(ctx context.Context, rt *route, h *host) (recs, all []*dns.TLSA, err *delivery.Error) {
	if rt.literal || !h.addrSecure || !(rt.relay || rt.mxSecure) {
		return nil, nil, nil
	}
	name := "_" + strconv.Itoa(rt.port) + "._tcp." + h.name
	a, lerr := d.dns.lookup(ctx, name, dns.TypeTLSA)
	switch {
	case lerr != nil && !isNXDomain(lerr):
		// RFC 7672 §2.2.3: a failed TLSA lookup makes the host unusable, since the failure
		// may be an attacker hiding the records.
		return nil, nil, &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhDNSFailure, RemoteMTA: h.name,
			Msg: "cannot look up the TLSA records of " + h.name, Err: fmt.Errorf("%w: %w", errTLSALookup, lerr)}
	case lerr != nil || !a.secure || len(a.rrs) == 0:
		return nil, nil, nil // no records, or not validated: no DANE
	}
	for _, rr := range a.rrs {
		t := rr.(*dns.TLSA)
		all = append(all, t)
		if usableTLSA(t) {
			recs = append(recs, t)
		}
	}
	return recs, all, nil
}

func levelOf(m TLSMode) tlsLevel {
	switch m {
	case TLSEncrypt:
		return levelEncrypt
	case TLSVerify:
		return levelVerify
	}
	return levelMay
}

// policyFor finds the operator's mode for domain: the domain itself, then ".parent" keys.
func (d *Deliverer) policyFor(domain string) (TLSMode, bool) {
	if m, ok := d.policy[domain]; ok {
		return m, true
	}
	for rest := domain; ; {
		_, parent, ok := strings.Cut(rest, ".")
		if !ok {
			return "", false
		}
		if m, ok := d.policy["."+parent]; ok {
			return m, true
		}
		rest = parent
	}
}

// usableTLSA reports whether t is a record SMTP can use: DANE-TA(2) or DANE-EE(3) (RFC 7672
// §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP), with a known selector and
// matching type.
func usableTLSA(t *dns.TLSA) bool {
	return (t.Usage == 2 || t.Usage == 3) && t.Selector <= 1 && t.MatchingType <= 2 && t.Certificate != ""
}

// tlsaMatches reports whether cert matches t's selector, matching type and data.
func tlsaMatches(t *dns.TLSA, cert *x509.Certificate) bool {
	got, err := dns.CertificateToDANE(t.Selector, t.MatchingType, cert)
	return err == nil && strings.EqualFold(got, t.Certificate)
}

// verifyDANE checks a server's chain against the TLSA records (RFC 7672 §3.1): a DANE-EE(3)
// record must match the leaf, whatever its names and dates (§3.1.1); a DANE-TA(2) record must
// match a certificate of the chain, from which the leaf must then verify for one of the names
// (§3.1.2).
func verifyDANE(certs []*x509.Certificate, recs []*dns.TLSA, names []string, now time.Time) error {
	if len(certs) == 0 {
		return errNoPeerCert
	}
	for _, t := range recs {
		if t.Usage == 3 && tlsaMatches(t, certs[0]) {
			return nil
		}
	}
	var lastErr error
	for _, t := range recs {
		if t.Usage != 2 {
			continue
		}
		for i, c := range certs {
			if !tlsaMatches(t, c) {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(c)
			inter := x509.NewCertPool()
			for _, ic := range certs[1:i] {
				inter.AddCert(ic)
			}
			if lastErr = verifyNames(certs[0], roots, inter, names, now); lastErr == nil {
				return nil
			}
		}
	}
	if lastErr != nil {
		return fmt.Errorf("%w: %w", errNoTLSAMatch, lastErr)
	}
	return errNoTLSAMatch
}

// verifyPKIX verifies a server's chain against roots (nil: the system's) for one of names.
func verifyPKIX(certs []*x509.Certificate, roots *x509.CertPool, names []string, now time.Time) error {
	if len(certs) == 0 {
		return errNoPeerCert
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	return verifyNames(certs[0], roots, inter, names, now)
}

func verifyNames(leaf *x509.Certificate, roots, inter *x509.CertPool, names []string, now time.Time) error {
	var err error
	for _, n := range names {
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: n, CurrentTime: now})
		if err == nil {
			return nil
		}
	}
	return err
}

// tlsCheck runs a plan's checks during one handshake and remembers what it found, for the log.
type tlsCheck struct {
	plan  *tlsPlan
	roots *x509.CertPool
	now   func() time.Time

	mu       sync.Mutex
	verified bool  // the certificate passed the plan's check, or PKIX for may/encrypt
	err      error // why it did not
}

// verify is tls.Config.VerifyConnection: it fails the handshake only when the plan requires a
// verified certificate.
func (c *tlsCheck) verify(cs tls.ConnectionState) error {
	var err error
	switch c.plan.level {
	case levelDANE:
		err = verifyDANE(cs.PeerCertificates, c.plan.tlsa, c.plan.names, c.now())
	default:
		err = verifyPKIX(cs.PeerCertificates, c.roots, c.plan.names, c.now())
	}
	c.mu.Lock()
	c.verified, c.err = err == nil, err
	c.mu.Unlock()
	if c.plan.level >= levelVerify {
		return err
	}
	return nil
}

// result is what the handshake's check found: whether the certificate verified, and why not.
func (c *tlsCheck) result() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified, c.err
}

// describe is the TLS part of a log line: "none", or the version and whether (and how) the
// certificate was verified.
func (c *tlsCheck) describe(cs tls.ConnectionState, on bool) string {
	if !on {
		return "none"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := tls.VersionName(cs.Version)
	switch {
	case c.verified && c.plan.level == levelDANE:
		s += " verified(dane)"
	case c.verified:
		s += " verified"
	default:
		s += " unverified"
	}
	return s
}

// tlsConfig builds the client TLS configuration for h under c's plan. Go's own verification is
// off because the plan decides (DANE ignores names and roots; may and encrypt take any
// certificate); VerifyConnection does the checking.
func (d *Deliverer) tlsConfig(rt *route, h *host, c *tlsCheck) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection:   c.verify,
		Time:               d.opts.Now,
	}
	// SNI: the host name (RFC 7672 §8.1 requires it with DANE). For an address literal
	// smtpclient.Dial fills in the address, which crypto/tls does not send as SNI.
	if _, err := netip.ParseAddr(h.name); err != nil && !rt.literal {
		cfg.ServerName = h.name
	}
	return cfg
}
