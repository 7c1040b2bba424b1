package spf

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
)

// zoneLookuper answers from records in memory: every name under .test has the fuzzed TXT
// record and an A record, so includes, redirects and macros lead somewhere; "slow." names
// fail as a timeout would.
type zoneLookuper struct{ txt string }

func (z zoneLookuper) Lookup(_ context.Context, name string, qtype uint16) (resolver.Answer, error) {
	name = dns.Fqdn(strings.ToLower(name))
	if strings.HasPrefix(name, "slow.") {
		return resolver.Answer{}, &resolver.Error{Name: name, Qtype: qtype, Err: resolver.ErrTimeout}
	}
	if !strings.HasSuffix(name, ".test.") {
		return resolver.Answer{NXDomain: true}, nil
	}
	hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: 60}
	var rr dns.RR
	switch qtype {
	case dns.TypeTXT:
		rr = &dns.TXT{Hdr: hdr, Txt: []string{z.txt}}
	case dns.TypeA:
		rr = &dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 1)}
	case dns.TypeMX:
		rr = &dns.MX{Hdr: hdr, Preference: 10, Mx: "mx." + name}
	default:
		return resolver.Answer{}, nil
	}
	return resolver.Answer{RRs: []dns.RR{rr}}, nil
}

// FuzzCheck: whatever the record says (garbage, huge, loops of includes, odd macros), the
// result is one of RFC 7208's and the check ends.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all", "v=spf1", "v=spf1 include:x.test -all", "v=spf1 redirect=%{d}",
		"v=spf1 exists:%{ir}.%{l1r-}.%{d2}.%{v}.%{h}.%{c}.%{r}.%{t}.%{p} ~all",
		"v=spf1 a/24//64 mx:%{o}/0 ptr:%{d} ip4:192.0.2.0/33 ip6:::1/129 ?all",
		"v=spf1 include:slow.test -all", "v=spf1 exp=%{i} foo=%{x} -all", "v=spf1 %%%-%_ all",
		"v=spf1 " + strings.Repeat("a ", 50),
	} {
		f.Add(s, "alice@a.test")
	}
	valid := map[Result]bool{None: true, Neutral: true, Pass: true, Fail: true, SoftFail: true, TempError: true, PermError: true}
	f.Fuzz(func(t *testing.T, record, from string) {
		c := New(zoneLookuper{record}, 0)
		o := c.Check(context.Background(), net.IPv4(192, 0, 2, 1), "h.test", from)
		if !valid[o.Result] {
			t.Fatalf("record %q, from %q: result %q", record, from, o.Result)
		}
	})
}

// TestTimeoutIsTemperror: a DNS timeout reaches the library as a timeout (temperror), a
// name that does not exist as not found (none).
func TestTimeoutIsTemperror(t *testing.T) {
	t.Parallel()
	l := &libResolver{r: zoneLookuper{"v=spf1 -all"}, v4: true}
	_, err := l.LookupTXT(context.Background(), "slow.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTimeout || !de.Temporary() {
		t.Errorf("slow.test: %#v, want a *net.DNSError that is a timeout", err)
	}
	_, err = l.LookupTXT(context.Background(), "nowhere.example")
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("nowhere.example: %#v, want a *net.DNSError not found", err)
	}
}

// BenchmarkCheck: one evaluation of a typical record (include, mx, ip4 ranges), DNS answered
// from memory: the cost of SPF itself, without the network.
func BenchmarkCheck(b *testing.B) {
	c := New(zoneLookuper{"v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 mx a:x.test ~all"}, 0)
	ip := net.IPv4(192, 0, 2, 7)
	b.ReportAllocs()
	for b.Loop() {
		if o := c.Check(context.Background(), ip, "h.test", "alice@a.test"); o.Result != SoftFail {
			b.Fatal(o)
		}
	}
}
