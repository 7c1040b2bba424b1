package smtp_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

func TestParseAddress(t *testing.T) {
	label63 := lineOf('d', 63)
	domain255 := strings.Join([]string{label63, label63, label63, label63}, ".") // 4*63+3 = 255
	good := []struct {
		name, in, local, domain string
	}{
		{"simple", "kenneth@oeey.com", "kenneth", "oeey.com"},
		{"seed sender", "test@host.example.com", "test", "host.example.com"},
		{"dots in local part", "john.q.public@example.com", "john.q.public", "example.com"},
		{"plus tag", "bob+lists@example.com", "bob+lists", "example.com"},
		{"all atext", "!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~", "example.com"},
		{"single-label domain", "root@localhost", "root", "localhost"},
		{"digits and hyphens in labels", "a@0-9.x-y.example", "a", "0-9.x-y.example"},
		{"domain lower-cased, local part keeps case", "Kenneth.Burgener@OEEY.Com", "Kenneth.Burgener", "oeey.com"},
		{"quoted local part with space", `"john doe"@oeey.com`, "john doe", "oeey.com"},
		{"quoted local part with escaped quote", `"a\"b"@example.com`, `a"b`, "example.com"},
		{"quoted local part with escaped backslash", `"a\\b"@example.com`, `a\b`, "example.com"},
		{"quoted local part with @", `"a@b"@example.com`, "a@b", "example.com"},
		{"quoted dot-string is unquoted", `"bob"@example.com`, "bob", "example.com"},
		{"quoted-pair of an ordinary char", `"\b\o\b"@example.com`, "bob", "example.com"},
		{"quoted local part with UTF-8", `"bjørn møller"@example.com`, "bjørn møller", "example.com"},
		{"UTF-8 local part and domain", "bjørn@exämple.test", "bjørn", "exämple.test"},
		{"UTF-8 domain keeps its case", "a@EXÄMPLE.test", "a", "EXÄMPLE.test"},
		{"CJK", "用户@例子.广告", "用户", "例子.广告"},
		{"IPv4 literal", "postmaster@[127.0.0.1]", "postmaster", "[127.0.0.1]"},
		{"IPv6 literal", "postmaster@[IPv6:::1]", "postmaster", "[IPv6:::1]"},
		{"IPv6 literal canonicalised", "a@[ipv6:2001:DB8:0:0:0:0:0:1]", "a", "[IPv6:2001:db8::1]"},
		{"IPv4-mapped IPv6 literal", "a@[IPv6:::ffff:192.0.2.1]", "a", "[IPv6:::ffff:192.0.2.1]"},
		{"local part of 64 octets", lineOf('l', 64) + "@example.com", lineOf('l', 64), "example.com"},
		{"quoted local part of 64 octets", `"` + lineOf(' ', 64) + `"@example.com`, lineOf(' ', 64), "example.com"},
		{"label of 63 octets", "a@" + label63 + ".com", "a", label63 + ".com"},
		{"domain of 255 octets", "a@" + domain255, "a", domain255},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			a, err := smtp.ParseAddress(tt.in)
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if a.Local != tt.local || a.Domain != tt.domain {
				t.Fatalf("ParseAddress(%q) = {%q, %q}, want {%q, %q}", tt.in, a.Local, a.Domain, tt.local, tt.domain)
			}
			again, err := smtp.ParseAddress(a.String())
			if err != nil || again != a {
				t.Fatalf("round trip through %q = (%+v, %v), want %+v", a.String(), again, err, a)
			}
		})
	}

	bad := []struct{ name, in string }{
		{"empty", ""},
		{"no @", "kenneth"},
		{"empty local part", "@example.com"},
		{"empty domain", "kenneth@"},
		{"only @", "@"},
		{"double @", "kenneth@@oeey.com"},
		{"leading dot", ".bob@example.com"},
		{"trailing dot", "bob.@example.com"},
		{"double dot", "bo..b@example.com"},
		{"space in local part", "bob smith@example.com"},
		{"special in local part", "bob(x)@example.com"},
		{"local part of 65 octets", lineOf('l', 65) + "@example.com"},
		{"quoted local part of 65 octets", `"` + lineOf(' ', 65) + `"@example.com`},
		{"empty quoted local part", `""@example.com`},
		{"unterminated quote", `"bob@example.com`},
		{"lone quote", `"@example.com`},
		{"unescaped quote", `"a"b"@example.com`},
		{"quoted text then atoms", `"a"b@example.com`},
		{"trailing backslash in quotes", `"a\"@example.com`},
		{"control char in local part", "a\x01b@example.com"},
		{"control char in quoted local part", "\"a\x01b\"@example.com"},
		{"DEL in quoted local part", "\"a\x7fb\"@example.com"},
		{"quoted-pair of a control char", "\"a\\\x00\"@example.com"},
		{"NUL in domain", "a@exam\x00ple.com"},
		{"invalid UTF-8 in local part", "\xff@example.com"},
		{"invalid UTF-8 in quoted local part", "\"\xc3\"@example.com"},
		{"C1 control in local part", "a\u0085b@example.com"},
		{"invalid UTF-8 in domain", "a@ex\xc3ample.com"},
		{"C1 control in domain", "a@ex\u0085ample.com"},
		{"label of 64 octets", "a@" + lineOf('d', 64) + ".com"},
		{"domain over 255 octets", "a@a." + domain255},
		{"leading hyphen in label", "a@-example.com"},
		{"trailing hyphen in label", "a@example-.com"},
		{"underscore in domain", "a@ex_ample.com"},
		{"leading dot in domain", "a@.example.com"},
		{"double dot in domain", "a@example..com"},
		{"trailing dot in domain", "a@example.com."},
		{"space in domain", "a@example .com"},
		{"short IPv4 literal", "a@[127.0.0]"},
		{"IPv4 literal out of range", "a@[256.0.0.1]"},
		{"IPv6 without tag", "a@[::1]"},
		{"IPv4 with IPv6 tag", "a@[IPv6:1.2.3.4]"},
		{"IPv6 tag without address", "a@[IPv6:]"},
		{"IPv6 with zone", "a@[IPv6:fe80::1%eth0]"},
		{"general literal", "a@[x-tag:stuff]"},
		{"unterminated literal", "a@[127.0.0.1"},
		{"empty literal", "a@[]"},
		{"hostname literal", "a@[example.com]"},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			a, err := smtp.ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %+v, want an error", tt.in, a)
			}
			if !errors.Is(err, smtp.ErrBadAddress) {
				t.Errorf("ParseAddress(%q) error %v does not wrap ErrBadAddress", tt.in, err)
			}
		})
	}
}

func TestParseDomain(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"lower-cased", "Host.Example.COM", "host.example.com", true},
		{"seed EHLO name", "trogdor", "trogdor", true},
		{"U-label", "exämple.test", "exämple.test", true},
		{"A-label", "xn--exmple-cua.test", "xn--exmple-cua.test", true},
		{"IPv4 literal", "[192.0.2.1]", "[192.0.2.1]", true},
		{"IPv6 literal", "[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", true},
		{"empty", "", "", false},
		{"trailing dot", "example.com.", "", false},
		{"root only", ".", "", false},
		{"hyphen start", "-a.example", "", false},
		{"hyphen end", "a-.example", "", false},
		{"bare IPv4", "192.0.2.1", "192.0.2.1", true}, // all-digit labels are valid sub-domains
		{"literal with junk", "[192.0.2.1]x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := smtp.ParseDomain(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseDomain(%q) = (%q, %v), want ok=%v", tt.in, got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, smtp.ErrBadAddress) {
				t.Errorf("error %v does not wrap ErrBadAddress", err)
			}
			if got != tt.want {
				t.Errorf("ParseDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAddressString(t *testing.T) {
	tests := []struct {
		name string
		addr smtp.Address
		want string
	}{
		{"zero is the null path", smtp.Address{}, ""},
		{"plain", smtp.Address{Local: "kenneth", Domain: "oeey.com"}, "kenneth@oeey.com"},
		{"space needs quotes", smtp.Address{Local: "john doe", Domain: "oeey.com"}, `"john doe"@oeey.com`},
		{"quote and backslash escaped", smtp.Address{Local: `a"b\c`, Domain: "x.test"}, `"a\"b\\c"@x.test`},
		{"leading dot needs quotes", smtp.Address{Local: ".a", Domain: "x.test"}, `".a"@x.test`},
		{"UTF-8 needs no quotes", smtp.Address{Local: "bjørn", Domain: "exämple.test"}, "bjørn@exämple.test"},
		{"postmaster without domain", smtp.Address{Local: "postmaster"}, "postmaster"},
		{"literal", smtp.Address{Local: "a", Domain: "[IPv6:::1]"}, "a@[IPv6:::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.addr.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddressPredicates(t *testing.T) {
	tests := []struct {
		in             string
		ascii, literal bool
	}{
		{"kenneth@oeey.com", true, false},
		{"bjørn@example.com", false, false},
		{"bob@exämple.test", false, false},
		{"a@[127.0.0.1]", true, true},
		{"a@[IPv6:::1]", true, true},
	}
	for _, tt := range tests {
		a, err := smtp.ParseAddress(tt.in)
		if err != nil {
			t.Fatalf("ParseAddress(%q): %v", tt.in, err)
		}
		if a.IsASCII() != tt.ascii || a.IsLiteral() != tt.literal {
			t.Errorf("%q: IsASCII=%v IsLiteral=%v, want %v %v", tt.in, a.IsASCII(), a.IsLiteral(), tt.ascii, tt.literal)
		}
	}
}

func TestIsAtom(t *testing.T) {
	for in, want := range map[string]bool{
		"rfc822": true, "utf-8": true, "x+y": true,
		"": false, "a b": false, "a.b": false, "a;b": false, "ø": false,
	} {
		if got := smtp.IsAtom(in); got != want {
			t.Errorf("IsAtom(%q) = %v, want %v", in, got, want)
		}
	}
}
