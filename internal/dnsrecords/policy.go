package dnsrecords

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/resolver"
)

// KindMTASTSPolicy is the MTA-STS policy file: not a DNS record, but what the _mta-sts record
// points senders at, served over HTTPS.
const KindMTASTSPolicy Kind = "MTA-STS policy"

// PolicyFetcher fetches domain's MTA-STS policy over HTTPS: mtasts.Fetch, with a client from
// mtasts.NewClient (AddrLookup finds the policy host through the Lookuper of Check).
type PolicyFetcher func(ctx context.Context, domain string) (*mtasts.Policy, error)

// ErrNoAddress is the lookup of a policy host without address records.
var ErrNoAddress = errors.New("dnsrecords: no A or AAAA record")

// AddrLookup finds a host's addresses (AAAA and A) through r, for mtasts.NewClient: the policy
// host is looked up where the other records are.
func AddrLookup(r Lookuper) mtasts.LookupFunc {
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
			a, err := r.Lookup(ctx, host, qt)
			if err != nil {
				return nil, err
			}
			for _, rr := range a.RRs {
				if addr, ok := resolver.Addr(rr); ok {
					out = append(out, addr)
				}
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w for %s", ErrNoAddress, host)
		}
		return out, nil
	}
}

// policyRecord is the policy file as a Record, for the results.
func policyRecord(s Set) Record {
	return Record{Kind: KindMTASTSPolicy, Name: mtasts.URL(s.Params.Domain), Text: s.Policy}
}

// checkPolicy fetches the policy file and compares it with the one tern prints (s.Policy):
// the mode, the mx patterns (one must cover the MX host; more are the administrator's
// business, a backup MX) and max_age. A policy that cannot be fetched is missing (no address,
// 404) or an error (a certificate that does not verify for mta-sts.DOMAIN, a redirect, a
// server that does not answer); one that is not a valid policy differs.
func checkPolicy(ctx context.Context, s Set, fetch PolicyFetcher) Result {
	res := Result{Record: policyRecord(s)}
	host := mtasts.HostPrefix + s.Params.Domain
	got, err := fetch(ctx, s.Params.Domain)
	var se *mtasts.StatusError
	switch {
	case errors.Is(err, ErrNoAddress):
		res.Status, res.Found = Missing, host+" has no address: publish its A/AAAA (or CNAME) record, and serve the file there over HTTPS"
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone):
		res.Status, res.Found = Missing, se.Error()+": serve the policy file tern prints (--mta-sts-policy) there"
	case mtasts.IsCertificateError(err):
		res.Status, res.Found = Failed, "the certificate of "+host+" does not verify (RFC 8461 §3.3 wants a valid WebPKI one for that name): "+err.Error()
	case errors.Is(err, mtasts.ErrPolicy):
		res.Status, res.Found = Differs, "not a valid policy: "+err.Error()
	case err != nil:
		res.Status, res.Found = Failed, err.Error()
	default:
		res.Status, res.Found = comparePolicy(got, s)
	}
	return res
}

// comparePolicy lists the lines of got that differ from tern's policy.
func comparePolicy(got *mtasts.Policy, s Set) (Status, string) {
	want, err := mtasts.Parse([]byte(s.Policy))
	if err != nil {
		return Failed, fmt.Sprintf("tern made a bad policy: %v", err)
	}
	var diffs []string
	if got.Mode != want.Mode {
		diffs = append(diffs, fmt.Sprintf("mode: %s, tern prints mode: %s (--mta-sts-mode)", got.Mode, want.Mode))
	}
	if !got.Matches(s.Params.Hostname) {
		have := "none"
		if len(got.MX) > 0 {
			have = strings.Join(got.MX, ", ")
		}
		diffs = append(diffs, fmt.Sprintf("mx: no pattern covers %s (the file has mx: %s); add mx: %s", s.Params.Hostname, have, s.Params.Hostname))
	}
	if got.MaxAge != want.MaxAge {
		diffs = append(diffs, fmt.Sprintf("max_age: %d, tern prints max_age: %d", int64(got.MaxAge.Seconds()), int64(want.MaxAge.Seconds())))
	}
	if len(diffs) == 0 {
		return OK, ""
	}
	return Differs, strings.Join(diffs, "\n")
}
