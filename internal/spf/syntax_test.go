package spf

import (
	"strings"
	"testing"
)

// TestCheckSyntax: the ABNF of RFC 7208 §12, term by term.
func TestCheckSyntax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		record string
		ok     bool
	}{
		{"v=spf1", true},
		{"V=SPF1  -ALL", true},
		{"v=spf1 +all -all ~all ?all", true},
		{"v=spf1 a a:x.test a/24 a//64 a:x.test/24//64 mx mx:x.test. ptr ptr:x.test", true},
		{"v=spf1 ip4:192.0.2.1 ip4:192.0.2.0/24 ip4:0.0.0.0/0 ip6:2001:db8::/32 ip6:::1", true},
		{"v=spf1 include:%{d}.x.test exists:%{ir}.%{l1r-+}._spf.%{d2} redirect=%{d}", true},
		{"v=spf1 exp=explain.%{d} foo=bar x.y-z_1=%% -all", true},
		{"v=spf1 include:x.1-2", true},
		{"v=spf2.0/pra -all", false},
		{"v=spf1 all:x.test", false},
		{"v=spf1 include", false},
		{"v=spf1 include:x", false},
		{"v=spf1 include:x.123", false},
		{"v=spf1 include:x.test-", false},
		{"v=spf1 ip4:192.0.2.1/33", false},
		{"v=spf1 ip4:192.0.2.1/024", false},
		{"v=spf1 ip4:2001:db8::1", false},
		{"v=spf1 ip6:192.0.2.1", false},
		{"v=spf1 ip6:fe80::1%eth0", false},
		{"v=spf1 a/", false},
		{"v=spf1 a//129", false},
		{"v=spf1 a/24/", false},
		{"v=spf1 mx:", false},
		{"v=spf1 exists:%{z}.x.test", false},
		{"v=spf1 exists:%{d.x.test", false},
		{"v=spf1 exists:%x.test", false},
		{"v=spf1 exists:x.test%", false},
		{"v=spf1 foo=b\x00r", false},
		{"v=spf1 redirect=a.test redirect=b.test", false},
		{"v=spf1 1foo=bar", false},
		{"v=spf1 frob", false},
	} {
		if err := checkSyntax(tc.record); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.record, err, tc.ok)
		}
	}
}

// FuzzSyntax: any record is accepted or refused without a crash, and the same in upper case
// (the grammar's names, macro letters and hex digits are case-insensitive).
func FuzzSyntax(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", "v=spf1 a:%{d}/24//64 exp=%{l}%%", "v=spf1 ip6:::1/128 %", "v=spf1 x=%{"} {
		f.Add(s)
	}
	upper := func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	f.Fuzz(func(t *testing.T, record string) {
		err := checkSyntax(record)
		if uerr := checkSyntax(strings.Map(upper, record)); (err == nil) != (uerr == nil) {
			t.Fatalf("%q: %v; in upper case: %v", record, err, uerr)
		}
	})
}
