package reports

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseRUA(t *testing.T) {
	for _, c := range []struct {
		in, addr string
		size     int64
		err      string
	}{
		{in: "mailto:dmarc@b.test", addr: "dmarc@b.test"},
		{in: " mailto:dmarc@B.test!10m", addr: "dmarc@b.test", size: 10 << 20},
		{in: "mailto:dmarc@b.test!500", addr: "dmarc@b.test", size: 500},
		{in: "mailto:dmarc@b.test!2k", addr: "dmarc@b.test", size: 2048},
		{in: "mailto:dmarc@b.test!1g", addr: "dmarc@b.test", size: 1 << 30},
		{in: "mailto:dmarc@b.test!1t", addr: "dmarc@b.test", size: 1 << 40},
		{in: "MAILTO:a%21b@b.test!1k", addr: "a!b@b.test", size: 1024},
		{in: "mailto:dmarc@b.test!", err: "bad size limit"},
		{in: "mailto:dmarc@b.test!10x", err: "bad size limit"},
		{in: "mailto:dmarc@b.test!k", err: "bad size limit"},
		{in: "mailto:dmarc@b.test!99999999999999999999t", err: "bad size limit"},
		{in: "https://b.test/report", err: "not a mailto: URI"},
		{in: "mailto:nobody", err: "bad address"},
		{in: "mailto:@b.test", err: "bad address"},
		{in: "mailto:a@b.test?subject=x", err: "not a mailto: address"},
		{in: "mailto:a%0D%0ARSET@b.test", err: "bad address"},
		{in: "mailto:a@b.test%0D%0ADATA", err: "bad address"},
		{in: "mailto:r%C3%A9@b.test", err: "not an ASCII address"},
		{in: "mailto:0@.", err: "bad address"},
	} {
		r, err := parseRUA(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.in, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.in, err)
		case r.Address != c.addr || r.MaxSize != c.size || r.Domain != strings.ToLower(c.addr[strings.LastIndex(c.addr, "@")+1:]):
			t.Errorf("%q: %+v, want %s limit %d", c.in, r, c.addr, c.size)
		}
	}
}

// TestVerifyExternal: RFC 7489 §7.1. An address in the policy domain's organisational domain
// needs nothing; another needs <policy domain>._report._dmarc.<its domain> TXT v=DMARC1.
func TestVerifyExternal(t *testing.T) {
	dns := fakeDNS{
		txt: map[string][]string{
			"b.test._report._dmarc.reports.test":   {"v=DMARC1"},
			"c.test._report._dmarc.reports.test":   {"v=spf1 -all"},
			"d.test._report._dmarc.reports.test":   {"v=DMARC1; rua=mailto:x@reports.test"},
			"e.test._report._dmarc.reports.test":   {"v=DMARC10"},
			"b.co.uk._report._dmarc.other.co.uk":   {"v=DMARC1"},
			"sub.b.test._report._dmarc.mx.b.test":  nil,
			"f.test._report._dmarc.broken.test":    {"v=DMARC1"},
			"x.example.com._report._dmarc.evil.cc": {"v=DMARC1 "},
		},
		fail: map[string]bool{"f.test._report._dmarc.broken.test": true},
	}
	for _, c := range []struct {
		policy, rua string
		ok          bool
	}{
		{"b.test", "b.test", true},
		{"sub.b.test", "mx.b.test", true}, // one organisational domain: no lookup
		{"b.test", "reports.test", true},
		{"c.test", "reports.test", false}, // not a DMARC record
		{"d.test", "reports.test", true},
		{"e.test", "reports.test", false},
		{"g.test", "reports.test", false},  // no record at all
		{"f.test", "broken.test", false},   // DNS failed: not now
		{"b.co.uk", "other.co.uk", true},   // co.uk is a public suffix: two organisations
		{"a.b.co.uk", "b.co.uk", true},     // one organisation under a public suffix
		{"x.example.com", "evil.cc", true}, // "v=DMARC1 " with trailing space
	} {
		err := verifyExternal(context.Background(), dns, c.policy, c.rua)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, errUnauthorized) {
			t.Errorf("%s to %s: %v, want ok=%v", c.policy, c.rua, err, c.ok)
		}
	}
}

// FuzzParseRUA: any rua= entry gives an address with a domain and a size limit that is not
// negative, or an error; never a panic.
func FuzzParseRUA(f *testing.F) {
	for _, s := range []string{"mailto:dmarc@b.test", "mailto:dmarc@b.test!10m", "mailto:a%21b@b.test!1k",
		"mailto:x@y!99999999999999999999t", "https://b.test/r", "mailto:!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRUA(s)
		if err != nil {
			return
		}
		if r.Address == "" || r.Domain == "" || r.MaxSize < 0 || !strings.Contains(r.Address, "@") {
			t.Fatalf("%q: %+v", s, r)
		}
	})
}
