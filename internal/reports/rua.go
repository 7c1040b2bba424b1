package reports

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/tern-mail/tern/internal/smtp"
)

// ruaAddress is one mailto: destination of a DMARC rua= tag.
type ruaAddress struct {
	URI     string // as published, without the size suffix
	Address string // the mailto: address
	Domain  string // its domain, lower case
	MaxSize int64  // the "!size" limit in octets; 0: none
}

// errNotMailto is parseRUA's error for a URI tern does not send to (RFC 7489 §6.2 leaves the
// schemes open; mailto: is the one every receiver supports).
var errNotMailto = errors.New("not a mailto: URI")

// parseRUA parses one rua= URI with its optional size limit (RFC 7489 §6.2):
//
//	dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]
//
// The units are powers of two (k is 1024). "!" inside the URI must be %-escaped, so the last
// one starts the limit.
func parseRUA(s string) (ruaAddress, error) {
	s = strings.TrimSpace(s)
	r := ruaAddress{URI: s}
	if i := strings.LastIndexByte(s, '!'); i >= 0 {
		size, err := parseSize(s[i+1:])
		if err != nil {
			return r, fmt.Errorf("rua %q: %w", s, err)
		}
		r.URI, r.MaxSize = s[:i], size
	}
	u, err := url.Parse(r.URI)
	if err != nil {
		return r, fmt.Errorf("rua %q: %w", s, err)
	}
	if !strings.EqualFold(u.Scheme, "mailto") {
		return r, fmt.Errorf("rua %q: %w", s, errNotMailto)
	}
	addr, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return r, fmt.Errorf("rua %q: %w", s, err)
	}
	if u.RawQuery != "" {
		return r, fmt.Errorf("rua %q: not a mailto: address", s)
	}
	mb, err := mailbox(addr)
	if err != nil {
		return r, fmt.Errorf("rua %q: %w", s, err)
	}
	r.Address, r.Domain = mb.String(), mb.Domain
	return r, nil
}

// mailbox checks a report address as RCPT TO will carry it (RFC 5321 §4.1.2): a DNS record
// is anyone's to write, and an escaped CR LF in it must not reach the SMTP dialogue. Reports
// are sent without SMTPUTF8, so the address must be ASCII.
func mailbox(addr string) (smtp.Address, error) {
	a, err := smtp.ParseAddress(addr)
	if err != nil {
		return a, err
	}
	if !a.IsASCII() {
		return a, fmt.Errorf("%s: not an ASCII address", a)
	}
	return a, nil
}

// parseSize reads 1*DIGIT [ "k" / "m" / "g" / "t" ].
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad size limit %q", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size limit %q", s)
	}
	return n * mult, nil
}

// TXTLookuper looks TXT records up: the strings of each record joined; none (the name does not
// exist, or has no TXT record) is an empty answer, not an error. An error is a failed lookup.
type TXTLookuper interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// errUnauthorized is the reason an external destination is skipped.
var errUnauthorized = errors.New("external destination not authorized")

// verifyExternal is the external destination verification of RFC 7489 §7.1: a report for
// policyDomain may go to an address in another organisational domain only when that domain
// publishes "<policyDomain>._report._dmarc.<rua domain>" TXT "v=DMARC1...". Otherwise a
// domain could have reports on its mail sent to anyone (or flood a victim with them).
func verifyExternal(ctx context.Context, dns TXTLookuper, policyDomain, ruaDomain string) error {
	if orgDomain(policyDomain) == orgDomain(ruaDomain) {
		return nil
	}
	name := policyDomain + "._report._dmarc." + ruaDomain
	txts, err := dns.LookupTXT(ctx, name)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUnauthorized, name, err)
	}
	for _, t := range txts {
		// RFC 7489 §7.1: records that do not start with "v=DMARC1" are discarded.
		if v, _, _ := strings.Cut(t, ";"); strings.TrimSpace(v) == "v=DMARC1" {
			return nil
		}
	}
	return fmt.Errorf("%w: no v=DMARC1 record at %s", errUnauthorized, name)
}

// orgDomain is the organisational domain (RFC 7489 §3.2) by the Public Suffix List: the
// public suffix and one label more; the name itself when it is a public suffix or unknown.
func orgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	od, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return od
}
