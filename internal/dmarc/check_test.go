package dmarc

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// zone answers TXT queries from a map (name without the final dot → the records, each one's
// strings); names in fail give a timeout, like a DNS server that does not answer.
type zone struct {
	txt  map[string][][]string
	fail map[string]bool
}

func (z zone) Lookup(_ context.Context, name string, qtype uint16) (resolver.Answer, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if z.fail[name] {
		return resolver.Answer{}, &resolver.Error{Name: name, Qtype: qtype, Err: resolver.ErrTimeout}
	}
	recs, ok := z.txt[name]
	if !ok || qtype != dns.TypeTXT {
		return resolver.Answer{NXDomain: !ok}, nil
	}
	var a resolver.Answer
	for _, r := range recs {
		a.RRs = append(a.RRs, &dns.TXT{Hdr: dns.RR_Header{Name: name + ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: r})
	}
	return a, nil
}

func one(s ...string) [][]string { return [][]string{s} }

func TestAligned(t *testing.T) {
	// RFC 7489 Appendix B.1.
	tests := []struct {
		auth, from     string
		strict, relaxd bool
	}{
		{"example.com", "example.com", true, true},              // B.1.1, B.1.2: identical
		{"child.example.com", "example.com", false, true},       // B.1.1: MAIL FROM a subdomain
		{"example.com", "child.example.com", false, true},       // B.1.2: d= the parent
		{"example.net", "example.com", false, false},            // B.1.1: another domain
		{"sample.net", "example.com", false, false},             // B.1.2
		{"Example.COM.", "example.com", true, true},             // case and the root's dot
		{"a.example.co.uk", "b.example.co.uk", false, true},     // org domain below a public suffix
		{"example.co.uk", "other.co.uk", false, false},          // co.uk is a public suffix
		{"a.github.io", "b.github.io", false, false},            // a private-section suffix
		{"", "example.com", false, false},                       // nothing authenticated
		{"mail.example.test", "news.example.test", false, true}, // an unlisted TLD: the * rule
	}
	for _, tc := range tests {
		if got := Aligned(tc.auth, tc.from, "s"); got != tc.strict {
			t.Errorf("Aligned(%q, %q, s) = %v", tc.auth, tc.from, got)
		}
		if got := Aligned(tc.auth, tc.from, "r"); got != tc.relaxd {
			t.Errorf("Aligned(%q, %q, r) = %v", tc.auth, tc.from, got)
		}
	}
}

func TestCheck(t *testing.T) {
	z := zone{txt: map[string][][]string{
		// RFC 7489 Appendix B.2.1, B.2.2 (with a split string), B.2.4.
		"_dmarc.example.com":        one("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com"),
		"_dmarc.reject.example":     one("v=DMARC1; p=reject; ", "sp=quarantine; rua=mailto:r@reject.example"),
		"_dmarc.quarantine.test":    one("v=DMARC1; p=quarantine; pct=5; rua=mailto:dmarc-feedback@quarantine.test"),
		"_dmarc.strict.example":     one("v=DMARC1; p=reject; adkim=s; aspf=s"),
		"_dmarc.own.reject.example": one("v=DMARC1; p=none"),
		"_dmarc.several.example":    {{"v=DMARC1; p=reject"}, {"v=DMARC1; p=none"}},
		"_dmarc.mixed.example":      {{"v=spf1 -all"}, {"some text"}, {"v=DMARC1; p=reject"}},
		"_dmarc.nop.example":        one("v=DMARC1; sp=reject"),
		"_dmarc.pct0.example":       one("v=DMARC1; p=reject; pct=0"),
		"_dmarc.qpct0.example":      one("v=DMARC1; p=quarantine; pct=0"),
	}, fail: map[string]bool{"_dmarc.slow.example": true, "_dmarc.slow-org.example": true}}
	pass := func(d string) AuthResult { return AuthResult{Domain: d, Result: "pass"} }
	failed := func(d string) AuthResult { return AuthResult{Domain: d, Result: "fail"} }
	tests := []struct {
		name      string
		from      string
		spf       AuthResult
		dkim      []AuthResult
		rand      int // what the random source returns
		result    Result
		requested Policy
		override  string
		at        string // where the record was found
		spfA      bool
		dkimA     bool
	}{
		{name: "B.2.1 pass by SPF", from: "a@example.com", spf: pass("example.com"),
			result: Pass, requested: PolicyNone, at: "example.com", spfA: true},
		{name: "pass by DKIM of a subdomain", from: "a@reject.example", spf: failed("reject.example"),
			dkim:   []AuthResult{failed("reject.example"), pass("mail.reject.example")},
			result: Pass, requested: PolicyNone, at: "reject.example", dkimA: true},
		{name: "fail p=reject", from: "a@reject.example", spf: pass("evil.example"), dkim: []AuthResult{pass("evil.example")},
			result: Fail, requested: PolicyReject, at: "reject.example"},
		{name: "sp= for a subdomain at the org domain", from: "a@sub.reject.example", spf: pass("evil.example"),
			result: Fail, requested: PolicyQuarantine, at: "reject.example"},
		{name: "a subdomain's own record", from: "a@own.reject.example",
			result: Fail, requested: PolicyNone, at: "own.reject.example"},
		{name: "SPF fail is no alignment", from: "a@reject.example", spf: failed("reject.example"),
			result: Fail, requested: PolicyReject, at: "reject.example"},
		{name: "B.2.4 pct=5 sampled in", from: "a@quarantine.test", rand: 4,
			result: Fail, requested: PolicyQuarantine, at: "quarantine.test"},
		{name: "B.2.4 pct=5 sampled out", from: "a@quarantine.test", rand: 5,
			result: Fail, requested: PolicyNone, override: "sampled_out", at: "quarantine.test"},
		{name: "pct=0 reject becomes quarantine", from: "a@pct0.example", rand: 0,
			result: Fail, requested: PolicyQuarantine, override: "sampled_out", at: "pct0.example"},
		{name: "pct=0 quarantine becomes none", from: "a@qpct0.example", rand: 0,
			result: Fail, requested: PolicyNone, override: "sampled_out", at: "qpct0.example"},
		{name: "strict: subdomain not aligned", from: "a@strict.example", spf: pass("mail.strict.example"),
			dkim: []AuthResult{pass("mail.strict.example")}, result: Fail, requested: PolicyReject, at: "strict.example"},
		{name: "strict: identical aligned", from: "a@strict.example", dkim: []AuthResult{pass("Strict.Example")},
			result: Pass, requested: PolicyNone, at: "strict.example", dkimA: true},
		{name: "null sender: HELO identity aligned", from: "mailer-daemon@example.com",
			spf:    AuthResult{Domain: "mx.example.com", Scope: "helo", Result: "pass"},
			result: Pass, requested: PolicyNone, at: "example.com", spfA: true},
		{name: "no record", from: "a@nowhere.example", spf: pass("nowhere.example"), result: None, requested: PolicyNone},
		{name: "several records", from: "a@several.example", result: None, requested: PolicyNone},
		{name: "other TXT records discarded", from: "a@mixed.example", result: Fail, requested: PolicyReject, at: "mixed.example"},
		{name: "no p= no rua=", from: "a@x.nop.example", result: None, requested: PolicyNone},
		// RFC 7489 §6.6.2: no aligned pass and a temporary failure of an aligned identifier
		// is no permanent failure: the policy does not apply.
		{name: "aligned SPF temperror", from: "a@reject.example", spf: AuthResult{Domain: "reject.example", Result: "temperror"},
			dkim: []AuthResult{failed("reject.example")}, result: TempError, requested: PolicyNone, at: "reject.example"},
		{name: "aligned DKIM temperror", from: "a@reject.example", spf: failed("reject.example"),
			dkim: []AuthResult{pass("evil.example"), {Domain: "mail.reject.example", Result: "temperror"}}, result: TempError, requested: PolicyNone, at: "reject.example"},
		{name: "DKIM temperror before its domain was read", from: "a@reject.example", dkim: []AuthResult{{Result: "temperror"}},
			result: TempError, requested: PolicyNone, at: "reject.example"},
		{name: "aligned DKIM temperror, SPF passes", from: "a@reject.example", spf: pass("reject.example"),
			dkim: []AuthResult{{Domain: "reject.example", Result: "temperror"}}, result: Pass, requested: PolicyNone, at: "reject.example", spfA: true},
		// A sender's own domains failing temporarily do not lift the From domain's policy.
		{name: "unaligned temperrors fail", from: "a@reject.example", spf: AuthResult{Domain: "evil.example", Result: "temperror"},
			dkim: []AuthResult{{Domain: "evil.example", Result: "temperror"}}, result: Fail, requested: PolicyReject, at: "reject.example"},
		{name: "strict: subdomain temperror not aligned", from: "a@strict.example", spf: AuthResult{Domain: "mail.strict.example", Result: "temperror"},
			result: Fail, requested: PolicyReject, at: "strict.example"},
		{name: "temperror", from: "a@slow.example", result: TempError, requested: PolicyNone},
		{name: "temperror at the org domain", from: "a@x.slow-org.example", result: TempError, requested: PolicyNone},
		{name: "no From address", from: "Undisclosed recipients:;", result: PermError, requested: PolicyNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Resolver: z, Rand: func(n int) int {
				if n != 100 {
					t.Errorf("Rand(%d), want Rand(100)", n)
				}
				return tc.rand
			}}
			m := Message{SourceIP: "192.0.2.1", EnvelopeFrom: tc.spf.Domain, SPF: tc.spf, DKIM: tc.dkim}
			ev := c.Check(context.Background(), []string{" " + tc.from}, m)
			at := ""
			if ev.Published != nil {
				at = ev.Published.Domain
			}
			if ev.Result != tc.result || ev.Requested != tc.requested || ev.Disposition != tc.requested ||
				ev.Override != tc.override || at != tc.at || ev.SPFAligned != tc.spfA || ev.DKIMAligned != tc.dkimA {
				t.Errorf("got %s requested %s disposition %s override %q at %q spf %v dkim %v (%s)\nwant %s requested %s override %q at %q spf %v dkim %v",
					ev.Result, ev.Requested, ev.Disposition, ev.Override, at, ev.SPFAligned, ev.DKIMAligned, ev.Reason,
					tc.result, tc.requested, tc.override, tc.at, tc.spfA, tc.dkimA)
			}
			if ev.SourceIP != "192.0.2.1" || ev.SPF != tc.spf || len(ev.DKIM) != len(tc.dkim) {
				t.Errorf("the underlying results are not kept: %+v", ev)
			}
		})
	}
}

// The pct= draw happens only for a failing message whose record samples.
func TestCheckDrawsOnlyWhenSampling(t *testing.T) {
	z := zone{txt: map[string][][]string{"_dmarc.example.com": one("v=DMARC1; p=reject")}}
	c := &Checker{Resolver: z, Rand: func(int) int { t.Fatal("Rand called for pct=100"); return 0 }}
	if ev := c.Check(context.Background(), []string{"a@example.com"}, Message{}); ev.Requested != PolicyReject {
		t.Errorf("requested %s, want reject", ev.Requested)
	}
}

// BenchmarkCheck: a whole evaluation, From field to disposition, against a cached answer.
func BenchmarkCheck(b *testing.B) {
	z := zone{txt: map[string][][]string{"_dmarc.example.com": one("v=DMARC1; p=reject; rua=mailto:r@example.com")}}
	c := &Checker{Resolver: z}
	m := Message{SPF: AuthResult{Domain: "bounce.example.com", Result: "pass"}, DKIM: []AuthResult{{Domain: "example.com", Result: "pass"}}}
	from := []string{` "Alice (Example)" <alice@news.example.com>`}
	for b.Loop() {
		if ev := c.Check(context.Background(), from, m); ev.Result != Pass {
			b.Fatal(ev.Result)
		}
	}
}
