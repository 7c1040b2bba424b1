// Package spf evaluates SPF (RFC 7208) for a connecting client: the MAIL FROM identity, or,
// for the null sender, the HELO identity (§2.3, §2.4). The evaluation is
// blitiri.com.ar/go/spf's (chasquid's and maddy's library: every mechanism and modifier,
// macros, the limits of §4.6.4); its DNS goes through tern's caching resolver, so that it
// asks the configured --resolver and a timeout gives temperror.
package spf

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	spflib "blitiri.com.ar/go/spf"
	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// Result is an SPF result (RFC 7208 §2.6), spelled as in Authentication-Results.
type Result string

// The results of RFC 7208 §2.6.
const (
	None      Result = "none"
	Neutral   Result = "neutral"
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Outcome is the result of one check and what an Authentication-Results header (RFC 8601
// §2.7.2) needs: the identity checked (MailFrom, or Helo for the null sender) and the reason.
type Outcome struct {
	Result Result
	// MailFrom is the MAIL FROM address checked (smtp.mailfrom); for the null sender it is
	// postmaster@HELO, the address §2.4 has macros see, and Helo is set.
	MailFrom string
	// Helo is the HELO name checked (smtp.helo) when the sender is null; empty otherwise.
	Helo string
	// Domain is the domain whose policy was evaluated.
	Domain string
	// Reason says why, for logs and the header's comment: the term that matched ("matched
	// ip"), the limit that was reached, the DNS failure.
	Reason string
}

// Lookuper looks DNS records up: *resolver.Resolver, in tern.
type Lookuper interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Checker evaluates SPF through a resolver. It is safe for concurrent use.
type Checker struct {
	r       Lookuper
	timeout time.Duration
}

// DefaultTimeout bounds a whole evaluation: §4.6.4 asks for at least 20 seconds.
const DefaultTimeout = 20 * time.Second

// New makes a checker over r; timeout bounds each evaluation (0: DefaultTimeout).
func New(r Lookuper, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Checker{r: r, timeout: timeout}
}

// Check evaluates SPF for a client at ip that said HELO helo and MAIL FROM:<mailFrom>: the
// MAIL FROM identity, or the HELO identity when mailFrom is empty (the null sender).
func (c *Checker) Check(ctx context.Context, ip net.IP, helo, mailFrom string) Outcome {
	o := Outcome{MailFrom: mailFrom}
	domain := ""
	if mailFrom == "" {
		o.Helo = helo
		o.MailFrom = "postmaster@" + helo
		domain = helo
	} else if at := strings.LastIndexByte(mailFrom, '@'); at >= 0 {
		domain = mailFrom[at+1:]
	} else {
		domain = helo // as the library does for a sender without a domain
	}
	o.Domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	// §4.3: a domain that is not a multi-label FQDN (a HELO address literal, say) is none.
	if !validDomain(o.Domain) {
		o.Result, o.Reason = None, "not a domain name: "+quote(domain)
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	lr := &libResolver{r: c.r, v4: ip.To4() != nil}
	res, err := spflib.CheckHostWithSender(ip, helo, o.MailFrom,
		spflib.WithContext(ctx), spflib.WithResolver(lr))
	o.Result = Result(res)
	if err != nil {
		o.Reason = err.Error()
	}
	return o
}

// validDomain reports whether d can be an SPF domain: at least two labels of 1 to 63 octets,
// 253 at most in all (§4.3, RFC 1035).
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for rest, more := d, true; more; {
		var l string
		l, rest, more = strings.Cut(rest, ".")
		if len(l) == 0 || len(l) > 63 {
			return false
		}
	}
	return true
}

func quote(s string) string { return "\"" + s + "\"" }

// libResolver gives the library the methods of net.Resolver it uses, answered from tern's
// resolver, with failures as the *net.DNSError it tells apart: IsNotFound for a name that
// does not exist (no match, a void lookup), IsTimeout or IsTemporary for no final word
// (temperror). The library counts the lookups and the void lookups itself (§4.6.4).
type libResolver struct {
	r  Lookuper
	v4 bool // the client's address is IPv4: only A records can match it
}

func (l *libResolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	a, err := l.r.Lookup(ctx, name, qtype)
	if err != nil {
		de := &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
		var re *resolver.Error
		if errors.As(err, &re) && re.Timeout() {
			de.IsTimeout, de.IsTemporary = true, false
		}
		return nil, de
	}
	if a.NXDomain {
		return nil, &net.DNSError{Err: "no such domain", Name: name, IsNotFound: true}
	}
	return a.RRs, nil
}

// LookupTXT returns each TXT record's strings joined, as net.Resolver does (RFC 7208 §3.3).
// An SPF record with a syntax error anywhere is a permanent failure of the lookup, which the
// library makes a permerror (see checkSyntax); the library asks TXT records only for SPF.
func (l *libResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := l.lookup(ctx, name, dns.TypeTXT)
	txts := resolver.TXTs(rrs)
	for _, txt := range txts {
		if lower := strings.ToLower(txt); lower == "v=spf1" || strings.HasPrefix(lower, "v=spf1 ") {
			if serr := checkSyntax(txt); serr != nil {
				return nil, &net.DNSError{Err: serr.Error(), Name: name}
			}
		}
	}
	return txts, err
}

// LookupMX returns the MX records (a null MX, "." , included: it matches nothing).
func (l *libResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := l.lookup(ctx, name, dns.TypeMX)
	var mxs []*net.MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	return mxs, err
}

// LookupIPAddr asks for A records, and for AAAA too when the client is on IPv6: an IPv4
// client can match only A records (a, mx), and exists looks only at A records (§5.7), so
// the AAAA query would only add a way to fail. With both, records from either are an answer;
// otherwise a failure of either is the error.
func (l *libResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	qtypes := []uint16{dns.TypeA}
	if !l.v4 {
		qtypes = append(qtypes, dns.TypeAAAA)
	}
	var (
		addrs []net.IPAddr
		errs  []error
	)
	for _, qt := range qtypes {
		rrs, err := l.lookup(ctx, host, qt)
		if err != nil {
			errs = append(errs, err)
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.A:
				addrs = append(addrs, net.IPAddr{IP: rr.A})
			case *dns.AAAA:
				addrs = append(addrs, net.IPAddr{IP: rr.AAAA})
			}
		}
	}
	if len(addrs) > 0 || len(errs) == 0 {
		return addrs, nil
	}
	return nil, errs[0]
}

// LookupAddr returns the names of the client's PTR records.
func (l *libResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsNotFound: true}
	}
	rrs, err := l.lookup(ctx, rev, dns.TypePTR)
	var names []string
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok {
			names = append(names, p.Ptr)
		}
	}
	return names, err
}
