package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeAlias(t *testing.T) {
	for in, want := range map[string]string{
		"Kenneth@Oeey.COM": "kenneth@oeey.com",
		"@Example.ORG":     "@example.org",
		"@":                "",
		"@a..b":            "",
		"@a/b":             "",
		"a@":               "",
		"@@a.test":         "",
	} {
		got, err := NormalizeAlias(in)
		if got != want || (want == "") != errors.Is(err, ErrBadAddress) {
			t.Errorf("NormalizeAlias(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, tc := range []struct {
		addr    string
		targets []string
		ok      bool
	}{
		{"a@x.test", []string{"b@x.test", "c@y.test"}, true},
		{"@x.test", []string{"b@x.test", "c@y.test"}, true},
		{"@x.test", []string{"@y.test"}, true},
		{"@x.test", []string{"@y.test", "b@x.test"}, false},
		{"@x.test", []string{"@y.test", "@z.test"}, false},
		{"@x.test", []string{"@x.test"}, false},
		{"a@x.test", []string{"@y.test"}, false},
	} {
		if err := CheckAliasForm(tc.addr, tc.targets); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadAlias) {
			t.Errorf("CheckAliasForm(%s, %v) = %v", tc.addr, tc.targets, err)
		}
	}
}

// FuzzNormalizeAlias: an alias address is an address as NormalizeAddress makes it, or @ and a
// domain that would pass in an address; idempotent.
func FuzzNormalizeAlias(f *testing.F) {
	for _, s := range []string{"@example.test", "a@b.test", "@", "@a/b", "@.x", "@Ǆ.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeAlias(in)
		if err != nil {
			return
		}
		if again, err := NormalizeAlias(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		if d, ok := strings.CutPrefix(out, "@"); ok {
			if _, err := NormalizeAddress("x@" + d); err != nil {
				t.Fatalf("NormalizeAlias(%q) = %q, a domain no address may have: %v", in, out, err)
			}
		}
	})
}
