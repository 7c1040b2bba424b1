package accounts

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestNormalizeAddress(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	// A domain of exactly 253 octets: 3 labels of 63, one of 61, and 3 dots.
	domain253 := long(63) + "." + long(63) + "." + long(63) + "." + long(61)

	good := []struct {
		name, in, want string
	}{
		{"plain", "alice@example.test", "alice@example.test"},
		{"mixed case", "Alice@Example.TEST", "alice@example.test"},
		{"dotted local", "kenneth.burgener@oeey.com", "kenneth.burgener@oeey.com"},
		{"utf8", "bjørn@exämple.test", "bjørn@exämple.test"},
		{"utf8 upper", "BJØRN@EXÄMPLE.TEST", "bjørn@exämple.test"},
		{"cyrillic", "Иван@пример.испытание", "иван@пример.испытание"},
		{"devanagari marks", "मनीष@उदाहरण.परीक्षा", "मनीष@उदाहरण.परीक्षा"},
		{"kelvin sign folds to k", "\u212Aate@example.test", "kate@example.test"},
		{"atext", "a!#$%&'*+-=?^_`{|}~z@example.test", "a!#$%&'*+-=?^_`{|}~z@example.test"},
		{"plus tag", "alice+lists@example.test", "alice+lists@example.test"},
		{"single label domain", "root@localhost", "root@localhost"},
		{"hyphen inside label", "a@my-host.example", "a@my-host.example"},
		{"digit labels", "a@123.456", "a@123.456"},
		{"local 64 octets", long(64) + "@example.test", long(64) + "@example.test"},
		{"domain 253 octets", "a@" + domain253, "a@" + domain253},
	}
	for _, tc := range good {
		t.Run("good/"+tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if err != nil {
				t.Fatalf("NormalizeAddress(%q) = %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeAddress(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	bad := []struct {
		name, in string
	}{
		{"empty", ""},
		{"no at", "alice"},
		{"dotdot path", "../x@y"},
		{"dotdot only", "..@example.test"},
		{"dot only", ".@example.test"},
		{"slash", "a/b@example.test"},
		{"backslash", `a\b@example.test`},
		{"leading dot", ".a@example.test"},
		{"trailing dot", "a.@example.test"},
		{"double dot", "a..b@example.test"},
		{"no domain", "a@"},
		{"no local", "@b"},
		{"space", "a b@c"},
		{"leading space", " a@example.test"},
		{"trailing newline", "a@example.test\n"},
		{"tab", "a\tb@example.test"},
		{"nul", "a\x00b@example.test"},
		{"control", "a\x1bb@example.test"},
		{"del", "a\x7fb@example.test"},
		{"nbsp", "a\u00a0b@example.test"},
		{"zero width space", "a\u200bb@example.test"},
		{"rtl override", "a\u202eb@example.test"},
		{"emoji local", "a\U0001F600@example.test"},
		{"invalid utf8", "a\xffb@example.test"},
		{"at in local", "a@b@example.test"},
		{"quoted", `"a b"@example.test`},
		{"colon", "a:b@example.test"},
		{"leading hyphen label", "a@-bad.test"},
		{"trailing hyphen label", "a@bad-.test"},
		{"leading dot domain", "a@.example.test"},
		{"trailing dot domain", "a@example.test."},
		{"double dot domain", "a@example..test"},
		{"dotdot domain", "a@.."},
		{"slash domain", "a@exa/mple.test"},
		{"backslash domain", `a@exa\mple.test`},
		{"underscore domain", "a@ex_ample.test"},
		{"literal", "a@[192.0.2.1]"},
		{"space domain", "a@exa mple.test"},
		{"local 65 octets", long(65) + "@example.test"},
		{"local 64 runes 128 octets", strings.Repeat("ø", 64) + "@example.test"},
		{"domain 254 octets", "a@" + domain253 + "a"},
		{"label 64 octets", "a@" + long(64) + ".test"},
		{"huge", long(10000) + "@example.test"},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("NormalizeAddress(%q) = %q, %v; want ErrBadAddress", tc.in, got, err)
			}
			if got != "" {
				t.Errorf("NormalizeAddress(%q) returned %q with its error", tc.in, got)
			}
			if !strings.HasPrefix(err.Error(), "accounts: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
		})
	}
}

// FuzzNormalizeAddress checks the properties the mail store relies on: no panic, a stable
// canonical form, and results that are safe directory names.
func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{
		"alice@example.test", "Alice@Example.TEST", "bjørn@exämple.test", "../x@y",
		"a/b@example.test", ".a@example.test", "a@", "@b", "a b@c", "a@-bad.test",
		"a@b@c", "kenneth.burgener@oeey.com", "\u212A@k", "İ@i", "a\x00@b", "a@b.",
		"ǅ@ǆ.test", "ß@ẞ.test",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeAddress(in)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("NormalizeAddress(%q) error %v does not wrap ErrBadAddress", in, err)
			}
			return
		}
		again, err := NormalizeAddress(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		if strings.ContainsAny(out, "/\\\x00") || !utf8.ValidString(out) {
			t.Fatalf("NormalizeAddress(%q) = %q: unsafe as a path", in, out)
		}
		local, domain, _ := strings.Cut(out, "@")
		for _, part := range []string{local, domain} {
			if part == "" || part == "." || part == ".." || part[0] == '.' {
				t.Fatalf("NormalizeAddress(%q) = %q: part %q unsafe as a directory name", in, out, part)
			}
		}
		if strings.ContainsFunc(out, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
			t.Fatalf("NormalizeAddress(%q) = %q: contains control or space", in, out)
		}
	})
}
