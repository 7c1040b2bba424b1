package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// resolver asks one or more DNS servers, in turn, and reports the AD bit of each answer: the
// server's word that it validated the answer with DNSSEC (RFC 4035 §3.2.3). tern does not
// validate itself; that is why Options.Resolver should be a validating resolver on this
// machine, where nobody can forge its answers on the way.
type resolver struct {
	servers  []string
	udp, tcp *dns.Client
}

// errNXDomain is the cause of a lookup of a name that does not exist (RCODE 3).
var errNXDomain = errors.New("remote: no such domain")

// dnsError is a failed lookup: NXDOMAIN (errNXDomain) or a temporary failure (SERVFAIL, a
// refusal, a timeout, no answer).
type dnsError struct {
	name  string
	qtype uint16
	err   error
}

func (e *dnsError) Error() string {
	return fmt.Sprintf("remote: DNS %s %s: %v", dns.TypeToString[e.qtype], e.name, e.err)
}

func (e *dnsError) Unwrap() error { return e.err }

// answer is the records of one type that a lookup returned, and whether they were validated.
type answer struct {
	rrs    []dns.RR
	secure bool // the AD bit was set
}

func newResolver(server string, timeout time.Duration) (*resolver, error) {
	r := &resolver{
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
	if server != "" {
		if _, _, err := splitHostPort(server); err != nil {
			return nil, fmt.Errorf("remote: resolver: %w", err)
		}
		r.servers = []string{server}
		return r, nil
	}
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cfg.Servers) == 0 {
		// As Go's own resolver does without a resolv.conf.
		r.servers = []string{"127.0.0.1:53", "[::1]:53"}
		return r, nil
	}
	for _, s := range cfg.Servers {
		r.servers = append(r.servers, net.JoinHostPort(s, cfg.Port))
	}
	return r, nil
}

// ednsSize is the UDP payload size we announce (the DNS flag day 2020 value, which avoids IP
// fragmentation).
const ednsSize = 1232

// lookup asks for name's records of type qtype. A name that exists without such records is an
// empty answer, not an error. CNAMEs are followed by the recursive server; the records of the
// asked type in its answer are taken whatever their owner name in the chain.
func (r *resolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	// RFC 6840 §5.7: AD in a query asks for the AD bit in the answer; DO (set by SetEdns0)
	// asks for DNSSEC records, which some resolvers need before they set AD.
	m.AuthenticatedData = true
	m.SetEdns0(ednsSize, true)
	var lastErr error
	for _, srv := range r.servers {
		resp, _, err := r.udp.ExchangeContext(ctx, m, srv)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			a := answer{secure: resp.AuthenticatedData}
			for _, rr := range resp.Answer {
				if rr.Header().Rrtype == qtype {
					a.rrs = append(a.rrs, rr)
				}
			}
			return a, nil
		case dns.RcodeNameError:
			return answer{secure: resp.AuthenticatedData}, &dnsError{name, qtype, errNXDomain}
		}
		lastErr = errors.New(rcodeName(resp.Rcode))
	}
	return answer{}, &dnsError{name, qtype, lastErr}
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE " + strconv.Itoa(rc)
}

// isNXDomain reports whether err says the name does not exist.
func isNXDomain(err error) bool { return errors.Is(err, errNXDomain) }
