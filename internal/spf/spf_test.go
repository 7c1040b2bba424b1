package spf

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/testutil"
)

// zone is the DNS data of the cases: one domain (or more) per case.
var zone = []string{
	`pass.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
	`fail.test. TXT "v=spf1 ip4:192.0.2.1 -all"`,
	`softfail.test. TXT "v=spf1 ~all"`,
	`neutral.test. TXT "v=spf1 ?all"`,
	`empty.test. TXT "v=spf1"`,
	`other.test. TXT "google-site-verification=x"`,
	"nospf.test. A 192.0.2.10",
	`slow.test. TXT "v=spf1 -all"`,
	`incslow.test. TXT "v=spf1 include:slow.test -all"`,
	`aslow.test. TXT "v=spf1 a:slow.test -all"`,
	`servfail.test. TXT "v=spf1 -all"`,
	`eleven.test. TXT "v=spf1 include:i1.test include:i2.test include:i3.test include:i4.test include:i5.test" " include:i6.test include:i7.test include:i8.test include:i9.test include:i10.test include:i11.test -all"`,
	`ten.test. TXT "v=spf1 include:i1.test include:i2.test include:i3.test include:i4.test include:i5.test" " include:i6.test include:i7.test include:i8.test include:i9.test include:i10.test -all"`,
	`i1.test. TXT "v=spf1 -all"`, `i2.test. TXT "v=spf1 -all"`, `i3.test. TXT "v=spf1 -all"`,
	`i4.test. TXT "v=spf1 -all"`, `i5.test. TXT "v=spf1 -all"`, `i6.test. TXT "v=spf1 -all"`,
	`i7.test. TXT "v=spf1 -all"`, `i8.test. TXT "v=spf1 -all"`, `i9.test. TXT "v=spf1 -all"`,
	`i10.test. TXT "v=spf1 -all"`, `i11.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
	`syntax.test. TXT "v=spf1 ip4:300.1.1.1 -all"`,
	`unknown.test. TXT "v=spf1 frobnicate -all"`,
	`twice.test. TXT "v=spf1 -all"`, `twice.test. TXT "v=spf1 +all"`,
	`macro.test. TXT "v=spf1 exists:%{ir}.%{l}._spf.%{d} -all"`,
	"10.2.0.192.alice._spf.macro.test. A 127.0.0.2",
	`macro2.test. TXT "v=spf1 exists:%{l1r-}.%{o}.%{d2}.%{v}.m2.test -all"`,
	"a.macro2.test.macro2.test.in-addr.m2.test. A 127.0.0.2",
	`void.test. TXT "v=spf1 a:v1.test a:v2.test a:v3.test ip4:192.0.2.10 -all"`,
	`twovoid.test. TXT "v=spf1 a:v1.test a:v2.test ip4:192.0.2.10 -all"`,
	`helo.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
	`mx.test. TXT "v=spf1 mx -all"`, "mx.test. MX 10 mail.mx.test.", "mail.mx.test. A 192.0.2.10",
	`a.test. TXT "v=spf1 a/24 -all"`, "a.test. A 192.0.2.99",
	`redirect.test. TXT "v=spf1 redirect=pass.test"`,
	`include.test. TXT "v=spf1 include:pass.test -all"`,
	`ptr.test. TXT "v=spf1 ptr -all"`, "10.2.0.192.in-addr.arpa. PTR host.ptr.test.", "host.ptr.test. A 192.0.2.10",
	`six.test. TXT "v=spf1 ip6:2001:db8::/32 a -all"`, "six.test. AAAA 2001:db8:1::1",
	`exp.test. TXT "v=spf1 -all exp=explain.exp.test"`, `explain.exp.test. TXT "%{i} is not one of %{d}'s servers"`,
	`mod.test. TXT "v=spf1 foo=bar ~all"`,
	hugeRecord(),
	`garbage.test. TXT "v=spf1 ip4:192.0.2.10 \\000\\255\\001 -all"`,
	`badmacro.test. TXT "v=spf1 exists:%{z}.test -all"`,
	`caps.test. TXT "V=SPF1 IP4:192.0.2.10 -ALL"`,
	`late1.test. TXT "v=spf1 ip4:192.0.2.10 ip4:192.0.2.300 -all"`,
	`late2.test. TXT "v=spf1 ip4:192.0.2.10 redirect=a.test redirect=b.test"`,
	`late3.test. TXT "v=spf1 ip4:192.0.2.10 exists:%{q}.test -all"`,
	`late4.test. TXT "v=spf1 ip4:192.0.2.10 a/33 -all"`,
	`late5.test. TXT "v=spf1 ip4:192.0.2.10 ip6:2001:db8::/129 -all"`,
	`late6.test. TXT "v=spf1 ip4:192.0.2.10 -all extra-garbage"`,
	`late7.test. TXT "v=spf1 ip4:192.0.2.10 include:nodot -all"`,
	`late8.test. TXT "v=spf1 ip4:192.0.2.10 exp=a.test exp=b.test"`,
	`valid.test. TXT "v=spf1 ip4:192.0.2.10 a:%{d}/24//64 mx:x.test. ptr:%{d2} exists:%{ir}.%{v}._spf.%{d} exp=e.%{d} foo=%{l}%%%_%- -all"`,
}

// hugeRecord is an SPF record of 60 ip4 terms in many strings (well over 512 octets), the last
// of which matches 192.0.2.10.
func hugeRecord() string {
	var b strings.Builder
	b.WriteString(`huge.test. TXT "v=spf1"`)
	for i := 1; i <= 60; i++ {
		fmt.Fprintf(&b, ` " ip4:198.51.100.%d/32"`, i)
	}
	b.WriteString(` " ip4:192.0.2.10 -all"`)
	return b.String()
}

type spfCase struct {
	name           string
	ip, helo, from string
	want           Result
}

var cases = []spfCase{
	{"pass ip4", "192.0.2.10", "mail.example.test", "alice@pass.test", Pass},
	{"fail", "198.51.100.1", "mail.example.test", "alice@fail.test", Fail},
	{"softfail", "198.51.100.1", "mail.example.test", "alice@softfail.test", SoftFail},
	{"neutral", "198.51.100.1", "mail.example.test", "alice@neutral.test", Neutral},
	{"empty record is neutral", "198.51.100.1", "mail.example.test", "alice@empty.test", Neutral},
	{"none without a record", "198.51.100.1", "mail.example.test", "alice@nospf.test", None},
	{"none with other TXT", "198.51.100.1", "mail.example.test", "alice@other.test", None},
	{"none for NXDOMAIN", "198.51.100.1", "mail.example.test", "alice@nowhere.test", None},
	{"temperror: the TXT times out", "192.0.2.10", "mail.example.test", "alice@slow.test", TempError},
	{"temperror: an include times out", "192.0.2.10", "mail.example.test", "alice@incslow.test", TempError},
	{"temperror: an a times out", "192.0.2.10", "mail.example.test", "alice@aslow.test", TempError},
	{"temperror: SERVFAIL", "192.0.2.10", "mail.example.test", "alice@servfail.test", TempError},
	{"permerror: 11 lookups", "192.0.2.10", "mail.example.test", "alice@eleven.test", PermError},
	{"10 lookups are allowed", "192.0.2.10", "mail.example.test", "alice@ten.test", Fail},
	{"permerror: bad ip4", "192.0.2.10", "mail.example.test", "alice@syntax.test", PermError},
	{"permerror: unknown mechanism", "192.0.2.10", "mail.example.test", "alice@unknown.test", PermError},
	{"permerror: two records", "192.0.2.10", "mail.example.test", "alice@twice.test", PermError},
	{"macros %{ir} %{l} %{d}: pass", "192.0.2.10", "mail.example.test", "alice@macro.test", Pass},
	{"macros: fail", "192.0.2.10", "mail.example.test", "bob@macro.test", Fail},
	{"macros %{l1r-} %{o} %{d2} %{v}", "192.0.2.10", "mail.example.test", "a-b@macro2.test", Pass},
	{"permerror: 3 void lookups", "192.0.2.10", "mail.example.test", "alice@void.test", PermError},
	{"2 void lookups are allowed", "192.0.2.10", "mail.example.test", "alice@twovoid.test", Pass},
	{"null sender: HELO pass", "192.0.2.10", "helo.test", "", Pass},
	{"null sender: HELO fail", "198.51.100.1", "helo.test", "", Fail},
	{"null sender: HELO address literal", "198.51.100.1", "[198.51.100.1]", "", None},
	{"mx", "192.0.2.10", "mail.example.test", "alice@mx.test", Pass},
	{"a/24", "192.0.2.10", "mail.example.test", "alice@a.test", Pass},
	{"redirect", "192.0.2.10", "mail.example.test", "alice@redirect.test", Pass},
	{"include", "192.0.2.10", "mail.example.test", "alice@include.test", Pass},
	{"ptr", "192.0.2.10", "mail.example.test", "alice@ptr.test", Pass},
	{"ip6", "2001:db8::1", "mail.example.test", "alice@six.test", Pass},
	{"a on IPv6", "2001:db8:1::1", "mail.example.test", "alice@six.test", Pass},
	{"ip6 fail", "2001:db9::1", "mail.example.test", "alice@six.test", Fail},
	{"exp= with fail", "198.51.100.1", "mail.example.test", "alice@exp.test", Fail},
	{"unknown modifier ignored", "198.51.100.1", "mail.example.test", "alice@mod.test", SoftFail},
	{"huge record", "192.0.2.10", "mail.example.test", "alice@huge.test", Pass},
	{"garbage in the record", "192.0.2.10", "mail.example.test", "alice@garbage.test", PermError},
	{"permerror: unknown macro letter", "192.0.2.10", "mail.example.test", "alice@badmacro.test", PermError},
	{"upper case", "192.0.2.10", "mail.example.test", "alice@caps.test", Pass},
	{"permerror: bad ip4 after the match", "192.0.2.10", "mail.example.test", "alice@late1.test", PermError},
	{"permerror: two redirects", "192.0.2.10", "mail.example.test", "alice@late2.test", PermError},
	{"permerror: bad macro after the match", "192.0.2.10", "mail.example.test", "alice@late3.test", PermError},
	{"permerror: a/33 after the match", "192.0.2.10", "mail.example.test", "alice@late4.test", PermError},
	{"permerror: ip6 /129 after the match", "192.0.2.10", "mail.example.test", "alice@late5.test", PermError},
	{"permerror: garbage after all", "192.0.2.10", "mail.example.test", "alice@late6.test", PermError},
	{"permerror: include of a name without a dot", "192.0.2.10", "mail.example.test", "alice@late7.test", PermError},
	{"permerror: two exp", "192.0.2.10", "mail.example.test", "alice@late8.test", PermError},
	{"every kind of term, valid", "192.0.2.10", "mail.example.test", "alice@valid.test", Pass},
}

func startZone(t *testing.T) *testutil.DNS {
	t.Helper()
	z := testutil.StartDNS(t, zone...)
	z.Drop("slow.test")
	z.Fail("servfail.test", 2) // SERVFAIL
	return z
}

func newChecker(t *testing.T, addr string) *Checker {
	t.Helper()
	c, err := resolver.NewClient(addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return New(resolver.New(c, resolver.Options{}), 0)
}

// TestCheck: every result, each mechanism and modifier, macros and the limits of §4.6.4.
func TestCheck(t *testing.T) {
	t.Parallel()
	z := startZone(t)
	c := newChecker(t, z.Addr)
	for _, tc := range cases {
		o := c.Check(context.Background(), net.ParseIP(tc.ip), tc.helo, tc.from)
		if o.Result != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, o.Result, o.Reason, tc.want)
		}
	}
}

// TestOutcome: what an Authentication-Results header needs: smtp.mailfrom, or smtp.helo for
// the null sender, and the reason.
func TestOutcome(t *testing.T) {
	t.Parallel()
	z := startZone(t)
	c := newChecker(t, z.Addr)
	for _, tc := range []struct {
		ip, helo, from string
		want           Outcome
	}{
		{"192.0.2.10", "mail.example.test", "alice@pass.test",
			Outcome{Result: Pass, MailFrom: "alice@pass.test", Domain: "pass.test", Reason: "matched ip"}},
		{"198.51.100.1", "Helo.Test.", "",
			Outcome{Result: Fail, MailFrom: "postmaster@Helo.Test.", Helo: "Helo.Test.", Domain: "helo.test", Reason: "matched all"}},
		{"192.0.2.10", "mail.example.test", "alice@eleven.test",
			Outcome{Result: PermError, MailFrom: "alice@eleven.test", Domain: "eleven.test", Reason: "lookup limit reached"}},
		{"192.0.2.10", "mail.example.test", "alice@void.test",
			Outcome{Result: PermError, MailFrom: "alice@void.test", Domain: "void.test", Reason: "void lookup limit reached"}},
	} {
		if o := c.Check(context.Background(), net.ParseIP(tc.ip), tc.helo, tc.from); o != tc.want {
			t.Errorf("%s %s: %+v\nwant %+v", tc.ip, tc.from, o, tc.want)
		}
	}
	o := c.Check(context.Background(), net.ParseIP("192.0.2.10"), "h.test", "alice@slow.test")
	if o.Result != TempError || !strings.Contains(o.Reason, "timed out") {
		t.Errorf("slow.test: %+v, want temperror with a reason that says timed out", o)
	}
}

// pyspf finds an interpreter with pyspf (Debian's python3-spf installs it for /usr/bin/python3,
// which may not be the python3 first on PATH).
func pyspf(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import spf").Run() == nil {
			return py
		}
	}
	testutil.MissingPeer(t, "pyspf (python3-spf) not installed: run scripts/test-deps.sh")
	return ""
}

// TestPyspf: pyspf, on the same DNS data, gives every case the result tern gives.
func TestPyspf(t *testing.T) {
	t.Parallel()
	py := pyspf(t)
	z := startZone(t)
	_, port, err := net.SplitHostPort(z.Addr)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"testdata/pyspf.py", port, "1"}
	for _, tc := range cases {
		args = append(args, tc.ip, tc.helo, tc.from)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("pyspf: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != len(cases) {
		t.Fatalf("pyspf gave %d results for %d cases:\n%s", len(got), len(cases), out)
	}
	for i, tc := range cases {
		if Result(got[i]) != tc.want {
			t.Errorf("%s: pyspf says %s, tern %s", tc.name, got[i], tc.want)
		}
	}
}

// TestValidDomain: which MAIL FROM or HELO domains get an SPF check at all (§4.3).
func TestValidDomain(t *testing.T) {
	long := strings.Repeat("a", 63)
	for d, want := range map[string]bool{
		"example.test":                    true,
		"a.b":                             true,
		long + ".test":                    true,
		"a" + long + ".test":              false, // a label of 64
		strings.Repeat(long+".", 4)[:254]: false, // 254 octets
		"":                                false,
		"localhost":                       false,
		".example.test":                   false,
		"example.test.":                   false,
		"example..test":                   false,
	} {
		if got := validDomain(d); got != want {
			t.Errorf("validDomain(%q) = %v, want %v", d, got, want)
		}
	}
}
