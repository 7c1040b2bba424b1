package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRateValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Rate)
		want string // "" valid, else part of the error
	}{
		{"defaults", func(*Rate) {}, ""},
		{"networks", func(r *Rate) { r.Exempt = []string{"192.0.2.7", "2001:db8::/32", "::ffff:10.0.0.1"} }, ""},
		{"bad network", func(r *Rate) { r.Exempt = []string{"192.0.2.0/33"} }, `rate.exempt "192.0.2.0/33"`},
		{"outbound", func(r *Rate) { r.OutboundDomains = []string{"Gmail.com.=600", "example.com = 0"} }, ""},
		{"bad outbound", func(r *Rate) { r.OutboundDomains = []string{"gmail.com"} }, `rate.outbound_domains "gmail.com"`},
		{"negative", func(r *Rate) { r.ClientMessages = -1 }, "must not be negative"},
		{"zero window", func(r *Rate) { r.ClientWindow = Duration{} }, "rate.client_window must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c.Rate)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRateParsed(t *testing.T) {
	r := DefaultRate()
	r.Exempt = []string{"192.0.2.7", "2001:db8::1/32", "::ffff:10.0.0.1"}
	r.OutboundDomains = []string{"Gmail.com.=600"}
	p, err := r.ExemptPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.1/32")}
	if len(p) != len(want) || p[0] != want[0] || p[1] != want[1] || p[2] != want[2] {
		t.Fatalf("ExemptPrefixes = %v, want %v", p, want)
	}
	m, err := r.OutboundPerDomain()
	if err != nil || m["gmail.com"] != 600 || len(m) != 1 {
		t.Fatalf("OutboundPerDomain = %v, %v", m, err)
	}
	if DefaultRate().ClientWindow.Duration != time.Minute {
		t.Fatal("client_window default is not a minute")
	}
}

// FuzzRateLists: the [rate] lists never panic, and what they accept is well formed.
func FuzzRateLists(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "::1", "gmail.com=600", "x=", "=1", "2001:db8::/129", "a.b=-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Rate{Exempt: []string{s}, OutboundDomains: []string{s}}
		if ps, err := r.ExemptPrefixes(); err == nil && (len(ps) != 1 || !ps[0].IsValid() || ps[0] != ps[0].Masked()) {
			t.Fatalf("%q: prefixes %v", s, ps)
		}
		if m, err := r.OutboundPerDomain(); err == nil {
			for d, n := range m {
				if d == "" || n < 0 || strings.HasSuffix(d, ".") {
					t.Fatalf("%q: %q=%d", s, d, n)
				}
			}
		}
	})
}
