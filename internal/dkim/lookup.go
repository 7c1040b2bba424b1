package dkim

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// Lookuper looks DNS records up: *resolver.Resolver, in tern (the one --resolver configures,
// with its cache).
type Lookuper interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// DNS is the Resolver over a Lookuper: the strings of each TXT record are joined (RFC 6376
// §3.6.2.2); a name that does not exist or has no TXT record is ErrNoRecord, any failure of
// the lookup temporary.
type DNS struct{ L Lookuper }

// LookupTXT implements Resolver.
func (d DNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := d.L.Lookup(ctx, dns.Fqdn(name), dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var txts []string
	for _, rr := range a.RRs {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	if len(txts) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNoRecord)
	}
	return txts, nil
}

// Verifier verifies messages with keys from its Resolver (Verify as a method, for the server).
type Verifier struct{ Resolver Resolver }

// Verify is Verify(ctx, r, v.Resolver).
func (v Verifier) Verify(ctx context.Context, r io.Reader) (Verification, error) {
	return Verify(ctx, r, v.Resolver)
}
