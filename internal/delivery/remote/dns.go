package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// dnsResolver asks the DNS servers (through resolver.Client) and reports the AD bit of each
// answer: the server's word that it validated the answer with DNSSEC (RFC 4035 §3.2.3). tern
// does not validate itself; that is why Options.Resolver should be a validating resolver on
// this machine, where nobody can forge its answers on the way.
type dnsResolver struct {
	c *resolver.Client
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

func newResolver(server string, timeout time.Duration) (*dnsResolver, error) {
	c, err := resolver.NewClient(server, timeout)
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	return &dnsResolver{c: c}, nil
}

// lookup asks for name's records of type qtype. A name that exists without such records is an
// empty answer, not an error. CNAMEs are followed by the recursive server; the records of the
// asked type in its answer are taken whatever their owner name in the chain.
func (r *dnsResolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	resp, err := r.c.Exchange(ctx, name, qtype)
	if err != nil {
		return answer{}, &dnsError{name, qtype, err}
	}
	a := answer{secure: resp.AuthenticatedData}
	if resp.Rcode == dns.RcodeNameError {
		return a, &dnsError{name, qtype, errNXDomain}
	}
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			a.rrs = append(a.rrs, rr)
		}
	}
	return a, nil
}

// isNXDomain reports whether err says the name does not exist.
func isNXDomain(err error) bool { return errors.Is(err, errNXDomain) }
