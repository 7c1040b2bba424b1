package dnsrecords

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// Lookuper looks DNS records up: *resolver.Resolver, in tern.
type Lookuper interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Status is the outcome of checking one record.
type Status string

// The outcomes: only OK is good.
const (
	OK      Status = "ok"
	Missing Status = "missing"
	Differs Status = "differs"
	Failed  Status = "error" // DNS gave no answer, or the policy host no good one
)

// Result is the check of one record: Found says what DNS has when it differs, or why the
// lookup failed.
type Result struct {
	Record Record
	Status Status
	Found  string
}

// SPFEval evaluates SPF for a sender at ip with MAIL FROM postmaster@domain and returns the
// result (internal/spf's, as "pass", "fail"...) and its reason.
type SPFEval func(ctx context.Context, ip net.IP, helo, domain string) (result, reason string)

// Checkers are what Check needs beyond DNS; either may be nil.
type Checkers struct {
	// SPF, with addresses in Params.IPs, judges the SPF records by evaluating them for those
	// addresses; without, by whether they name the MX.
	SPF SPFEval
	// Policy fetches the MTA-STS policy file, to compare it with tern's; without, it is not
	// checked.
	Policy PolicyFetcher
}

// Check asks r for each record of s, and fetches the MTA-STS policy file (after the _mta-sts
// record's result) with c.Policy.
func Check(ctx context.Context, r Lookuper, s Set, c Checkers) []Result {
	spf := c.SPF
	var out []Result
	for _, rec := range s.Records {
		a, err := r.Lookup(ctx, rec.Name, rec.Type)
		res := Result{Record: rec}
		switch {
		case err != nil:
			res.Status, res.Found = Failed, err.Error()
		case rec.Type == dns.TypeTXT:
			res.Status, res.Found = checkTXT(ctx, rec, resolver.TXTs(a.RRs), s.Params, spf)
		default:
			res.Status, res.Found = checkRR(rec, a.RRs)
		}
		if res.Status == Missing && rec.Optional {
			res.Status, res.Found = OK, "not published: fine for a retired key once the mail signed with it has arrived"
		}
		out = append(out, res)
		if rec.Kind == KindMTASTS && c.Policy != nil {
			out = append(out, checkPolicy(ctx, s, c.Policy))
		}
	}
	return out
}

// WriteResults prints one line per result and reports whether every record is ok.
func WriteResults(w io.Writer, rs []Result) (bool, error) {
	good := true
	var b strings.Builder
	for _, r := range rs {
		name := r.Record.Name
		if r.Record.Type != 0 { // the policy file has none
			name += " " + typeName(r.Record.Type)
		}
		fmt.Fprintf(&b, "%-8s %-26s %s\n", r.Status, r.Record.Kind, name)
		for _, l := range strings.Split(r.Found, "\n") {
			if l != "" {
				fmt.Fprintf(&b, "         %s\n", l)
			}
		}
		good = good && r.Status == OK
	}
	_, err := io.WriteString(w, b.String())
	return good, err
}

func typeName(t uint16) string { return dns.TypeToString[t] }

// checkRR compares MX, A, AAAA and SRV records: the MX and SRV by target (and port), the
// preference and weights being the administrator's choice.
func checkRR(rec Record, rrs []dns.RR) (Status, string) {
	if len(rrs) == 0 {
		return Missing, ""
	}
	want, err := dns.NewRR(rec.Zone())
	if err != nil {
		return Failed, fmt.Sprintf("tern made a bad record: %v", err)
	}
	var found []string
	for _, rr := range rrs {
		if sameRR(want, rr) {
			return OK, ""
		}
		h := rr.Header()
		found = append(found, strings.TrimPrefix(rr.String(), h.String()))
	}
	return Differs, "DNS has: " + strings.Join(found, ", ")
}

func sameRR(want, got dns.RR) bool {
	switch w := want.(type) {
	case *dns.MX:
		g, ok := got.(*dns.MX)
		return ok && strings.EqualFold(g.Mx, w.Mx)
	case *dns.SRV:
		g, ok := got.(*dns.SRV)
		return ok && strings.EqualFold(g.Target, w.Target) && g.Port == w.Port
	case *dns.A:
		g, ok := got.(*dns.A)
		return ok && g.A.Equal(w.A)
	case *dns.AAAA:
		g, ok := got.(*dns.AAAA)
		return ok && g.AAAA.Equal(w.AAAA)
	}
	return false
}

// checkTXT finds, among the TXT records at the name, the one of the record's kind (by its
// version tag) and compares it.
func checkTXT(ctx context.Context, rec Record, have []string, p Params, spf SPFEval) (Status, string) {
	prefix := rec.Text
	if i := strings.IndexAny(prefix, "; "); i >= 0 {
		prefix = prefix[:i]
	}
	var mine []string
	for _, t := range have {
		if strings.HasPrefix(strings.ToLower(t), strings.ToLower(prefix)) {
			mine = append(mine, t)
		}
	}
	switch {
	case len(mine) == 0:
		return Missing, ""
	case len(mine) > 1 && rec.Kind != KindDKIM:
		// SPF, DMARC, MTA-STS and TLS-RPT all ignore a name with two records (permerror).
		return Differs, fmt.Sprintf("DNS has %d records, which makes each of them void: %q", len(mine), mine)
	}
	got := mine[0]
	var ok bool
	switch rec.Kind {
	case KindSPF, KindHostSPF:
		return checkSPF(ctx, rec, got, p, spf)
	case KindDKIM:
		ok = tags(got)["p"] == tags(rec.Text)["p"]
	case KindDMARC:
		g, w := tags(got), tags(rec.Text)
		// A stricter policy than the one proposed is the administrator's choice.
		if strings.EqualFold(g["p"], "reject") {
			g["p"] = w["p"]
		}
		ok = equalTags(g, w)
	case KindMTASTS:
		if equalTags(tags(got), tags(rec.Text)) {
			return OK, ""
		}
		return Differs, fmt.Sprintf("DNS has: %q; the policy tern prints has id=%s: publish a new id whenever the policy file\n"+
			"changes, or senders keep the policy they have until its max_age runs out", got, tags(rec.Text)["id"])
	case KindTLSRPT:
		return checkTLSRPT(rec, got)
	default:
		ok = equalTags(tags(got), tags(rec.Text))
	}
	if ok {
		return OK, ""
	}
	return Differs, fmt.Sprintf("DNS has: %q", got)
}

// checkSPF: with an evaluator and the host's addresses, SPF must pass for each; without, the
// record must name the MX hosts (mx, or a:HOSTNAME; for the host's own record, a) with no
// qualifier other than +.
func checkSPF(ctx context.Context, rec Record, got string, p Params, spf SPFEval) (Status, string) {
	domain := strings.TrimSuffix(rec.Name, ".")
	if spf != nil && len(p.IPs) > 0 {
		for _, ip := range p.IPs {
			if res, reason := spf(ctx, ip, p.Hostname, domain); res != "pass" {
				return Differs, fmt.Sprintf("SPF for %s from %s is %s (%s); DNS has: %q", domain, ip, res, reason, got)
			}
		}
		return OK, ""
	}
	for _, term := range strings.Fields(strings.ToLower(got))[1:] {
		term = strings.TrimPrefix(term, "+")
		if term == "mx" || term == "mx:"+domain || term == "a:"+p.Hostname || term == "a" && domain == p.Hostname {
			return OK, ""
		}
	}
	return Differs, fmt.Sprintf("the record does not name the MX (mx or a:%s); DNS has: %q", p.Hostname, got)
}

// tags reads a tag=value list (DKIM, DMARC, MTA-STS and TLS-RPT records share the syntax),
// names in lower case, whitespace dropped.
func tags(s string) map[string]string {
	m := map[string]string{}
	for _, t := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(t, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k != "" {
			m[k] = strings.Join(strings.Fields(v), "")
		}
	}
	return m
}

// equalTags compares tag lists without regard to case: the values compared this way (DMARC,
// MTA-STS, TLS-RPT) are keywords, ids and mailto URIs.
func equalTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := a[k]; !ok || !strings.EqualFold(w, v) {
			return false
		}
	}
	return true
}

// checkTLSRPT checks a TLS-RPT record (RFC 8460 §3): v=TLSRPTv1 first, and a rua of mailto: or
// https: URIs. Reports going elsewhere than tern proposes is the administrator's choice, and
// only noted.
func checkTLSRPT(rec Record, got string) (Status, string) {
	rua, ok := tags(got)["rua"]
	if !ok || rua == "" {
		return Differs, fmt.Sprintf("no rua= (where reports go); DNS has: %q", got)
	}
	for _, u := range strings.Split(rua, ",") {
		scheme, rest, _ := strings.Cut(u, ":")
		if rest == "" || !strings.EqualFold(scheme, "mailto") && !strings.EqualFold(scheme, "https") {
			return Differs, fmt.Sprintf("rua %q: want mailto: or https: URIs; DNS has: %q", u, got)
		}
	}
	if want := tags(rec.Text)["rua"]; !strings.EqualFold(rua, want) {
		return OK, fmt.Sprintf("reports go to %s, not %s as tern proposes (--tls-rua)", rua, want)
	}
	return OK, ""
}
