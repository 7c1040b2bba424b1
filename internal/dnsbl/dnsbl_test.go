package dnsbl

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/testutil"
)

func TestParseSite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text   string
		zone   string
		weight int
		match  []string // answers that match
		miss   []string // answers that do not
		err    string
	}{
		{text: "zen.example.test", zone: "zen.example.test", weight: 1, match: []string{"127.0.0.2", "127.0.0.11"}},
		{text: "Zen.Example.Test.*3", zone: "zen.example.test", weight: 3, match: []string{"127.0.0.4"}},
		{text: "b.example.test=127.0.0.[2..11]*2", zone: "b.example.test", weight: 2, match: []string{"127.0.0.2", "127.0.0.11"}, miss: []string{"127.0.0.1", "127.0.0.12", "127.0.1.2"}},
		{text: "list.dnswl.test=127.0.[0..255].[1;3..4]*-2", zone: "list.dnswl.test", weight: -2, match: []string{"127.0.9.1", "127.0.15.4"}, miss: []string{"127.0.9.2", "127.0.9.0"}},
		{text: "x.test=127.0.0.2", zone: "x.test", weight: 1, match: []string{"127.0.0.2"}, miss: []string{"127.0.0.3", "::1"}},
		{text: "", err: "want a zone"},
		{text: "x.test*", err: "bad weight"},
		{text: "x.test*three", err: "bad weight"},
		{text: "x.test=127.0.0", err: "four octets"},
		{text: "x.test=127.0.0.[2..1]", err: "backwards"},
		{text: "x.test=127.0.0.[2..11", err: "unclosed"},
		{text: "x.test=127.0.0.256", err: "not a number"},
		{text: "x..test", err: "label"},
		{text: "x test", err: "character"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			s, err := ParseSite(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseSite(%q) = %v, want an error with %q", tc.text, err, tc.err)
				}
				return
			}
			if err != nil || s.Zone != tc.zone || s.Weight != tc.weight || s.String() != tc.text {
				t.Fatalf("ParseSite(%q) = %+v, %v", tc.text, s, err)
			}
			for _, a := range tc.match {
				if !s.Matches(netip.MustParseAddr(a)) {
					t.Errorf("%s does not match %s", tc.text, a)
				}
			}
			for _, a := range tc.miss {
				if s.Matches(netip.MustParseAddr(a)) {
					t.Errorf("%s matches %s", tc.text, a)
				}
			}
		})
	}
}

func TestQueryName(t *testing.T) {
	t.Parallel()
	for ip, want := range map[string]string{
		"192.0.2.99":         "99.2.0.192.bl.test.",
		"::ffff:192.0.2.99":  "99.2.0.192.bl.test.",
		"2001:db8:1:2::abcd": "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test.",
	} {
		if got := QueryName(netip.MustParseAddr(ip), "bl.test"); got != want {
			t.Errorf("QueryName(%s) = %s, want %s", ip, got, want)
		}
	}
	if got := ReverseName(netip.MustParseAddr("192.0.2.99")); got != "99.2.0.192.in-addr.arpa." {
		t.Errorf("ReverseName = %s", got)
	}
}

func newResolver(t *testing.T, z *testutil.DNS) *resolver.Resolver {
	t.Helper()
	c, err := resolver.NewClient(z.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.New(c, resolver.Options{})
}

func sites(t *testing.T, texts ...string) []Site {
	t.Helper()
	var out []Site
	for _, s := range texts {
		site, err := ParseSite(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, site)
	}
	return out
}

// TestCheck: weights add up over the sites that list a client, filters pick answers, an allow
// list takes off, a zone that fails or answers an error code counts for nothing, and a zone
// shared by two sites is asked once.
func TestCheck(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t,
		"2.2.0.192.zen.test. A 127.0.0.2", "2.2.0.192.zen.test. A 127.0.0.10",
		"2.2.0.192.b.test. A 127.0.0.12",
		"3.2.0.192.zen.test. A 127.0.0.4",
		"3.2.0.192.wl.test. A 127.0.5.2",
		"4.2.0.192.zen.test. A 127.255.255.254",
		"d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.test. A 127.0.0.3",
	)
	z.Fail("2.2.0.192.down.test", dns.RcodeServerFailure)
	l := &Lists{Resolver: newResolver(t, z), Sites: sites(t,
		"zen.test=127.0.0.[2..3]*3", "zen.test=127.0.0.[10..11]*1", "zen.test=127.0.0.4*2",
		"b.test=127.0.0.[2..11]", "down.test*5", "wl.test=127.0.[0..255].[2..3]*-4")}
	for _, tc := range []struct {
		ip      string
		score   int
		blocked []string
		errs    int
	}{
		{"192.0.2.2", 4, []string{"zen.test"}, 1},  // zen twice, b's answer filtered out, down failed
		{"192.0.2.3", -2, []string{"zen.test"}, 0}, // listed, and allowed more
		{"192.0.2.4", 0, nil, 1},                   // zen's error code is no listing
		{"192.0.2.5", 0, nil, 0},
		{"2001:db8:1:2::abcd", 3, []string{"zen.test"}, 0},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			r := l.Check(context.Background(), netip.MustParseAddr(tc.ip))
			if r.Score != tc.score || !reflect.DeepEqual(r.Blocked(), tc.blocked) || len(r.Errors) != tc.errs {
				t.Errorf("Check(%s) = score %d blocked %v errors %v; want %d %v %d errors", tc.ip, r.Score, r.Blocked(), r.Errors, tc.score, tc.blocked, tc.errs)
			}
		})
	}
	if n := z.Count("2.2.0.192.zen.test", dns.TypeA); n != 1 {
		t.Errorf("zen.test asked %d times for one client, want once", n)
	}
}

// TestReverseLookup: a PTR whose name points back is confirmed; one that does not, or no PTR,
// is not; a failing server is temporary.
func TestReverseLookup(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t,
		"1.2.0.192.in-addr.arpa. PTR mail.example.test.", "mail.example.test. A 192.0.2.1",
		"2.2.0.192.in-addr.arpa. PTR liar.example.test.", "liar.example.test. A 192.0.2.99",
		"3.2.0.192.in-addr.arpa. PTR other.example.test.", "3.2.0.192.in-addr.arpa. PTR Good.Example.Test.",
		"other.example.test. A 192.0.2.77", "good.example.test. A 192.0.2.3",
		"5.2.0.192.in-addr.arpa. PTR slow.example.test.",
		"b.a.9.8.7.6.5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR six.example.test.",
		"six.example.test. AAAA 2001:db8::4567:89ab",
	)
	z.Fail("4.2.0.192.in-addr.arpa", dns.RcodeServerFailure)
	z.Fail("slow.example.test", dns.RcodeServerFailure)
	r := newResolver(t, z)
	for ip, want := range map[string]Name{
		"192.0.2.1":           {Name: "mail.example.test", PTR: "mail.example.test"},
		"192.0.2.2":           {PTR: "liar.example.test"},
		"192.0.2.3":           {Name: "good.example.test", PTR: "good.example.test"},
		"192.0.2.4":           {Temporary: true},
		"192.0.2.5":           {PTR: "slow.example.test", Temporary: true},
		"192.0.2.6":           {},
		"2001:db8::4567:89ab": {Name: "six.example.test", PTR: "six.example.test"},
	} {
		if got := ReverseLookup(context.Background(), r, netip.MustParseAddr(ip)); got != want {
			t.Errorf("ReverseLookup(%s) = %+v, want %+v", ip, got, want)
		}
	}
}

func FuzzParseSite(f *testing.F) {
	for _, s := range []string{"zen.example.test", "zen.example.test*3", "b.test=127.0.0.[2..11]*2",
		"wl.test=127.0.[0..255].[1;3..4]*-2", "x=1.2.3.4", "x=[1..2.3.4", "x*-0", "=*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSite(text)
		if err != nil {
			return
		}
		if s.Zone == "" || checkZone(s.Zone) != nil {
			t.Fatalf("ParseSite(%q) accepted zone %q", text, s.Zone)
		}
		s.Matches(netip.MustParseAddr("127.0.0.2"))
		if _, err := ParseSite(s.String()); err != nil {
			t.Fatalf("%q parsed, its String %q does not: %v", text, s.String(), err)
		}
	})
}
