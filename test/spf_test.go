package test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestSPFCheck: tern spf check gives each SPF result through the real binary, and pyspf
// (python3-spf) gives the same on the same DNS data.
func TestSPFCheck(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t,
		`pass.test. TXT "v=spf1 mx -all"`, "pass.test. MX 10 mx.pass.test.", "mx.pass.test. A 127.0.0.2",
		`fail.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`softfail.test. TXT "v=spf1 a ~all"`, "softfail.test. A 192.0.2.1",
		`neutral.test. TXT "v=spf1 ?all"`,
		"none.test. A 127.0.0.2",
		`slow.test. TXT "v=spf1 +all"`,
		`eleven.test. TXT "v=spf1 a:a1.test a:a2.test a:a3.test a:a4.test a:a5.test a:a6.test" " a:a7.test a:a8.test a:a9.test a:a10.test a:a11.test -all"`,
		"a1.test. A 192.0.2.1", "a2.test. A 192.0.2.1", "a3.test. A 192.0.2.1", "a4.test. A 192.0.2.1",
		"a5.test. A 192.0.2.1", "a6.test. A 192.0.2.1", "a7.test. A 192.0.2.1", "a8.test. A 192.0.2.1",
		"a9.test. A 192.0.2.1", "a10.test. A 192.0.2.1", "a11.test. A 127.0.0.2",
		`syntax.test. TXT "v=spf1 ip4:127.0.0.2/40 -all"`,
		`helo.test. TXT "v=spf1 ip4:127.0.0.2 -all"`,
	)
	z.Drop("slow.test")
	cases := []struct {
		from, helo string
		want       string // tern's output, result line first
	}{
		{"alice@pass.test", "client.test", "result: pass\nidentity: smtp.mailfrom=alice@pass.test\ndomain: pass.test\nreason: matched mx\n"},
		{"alice@fail.test", "client.test", "result: fail\nidentity: smtp.mailfrom=alice@fail.test\ndomain: fail.test\nreason: matched all\n"},
		{"alice@softfail.test", "client.test", "result: softfail\n"},
		{"alice@neutral.test", "client.test", "result: neutral\n"},
		{"alice@none.test", "client.test", "result: none\n"},
		{"alice@slow.test", "client.test", "result: temperror\n"},
		{"alice@eleven.test", "client.test", "result: permerror\nidentity: smtp.mailfrom=alice@eleven.test\ndomain: eleven.test\nreason: lookup limit reached\n"},
		{"alice@syntax.test", "client.test", "result: permerror\n"},
		{"", "helo.test", "result: pass\nidentity: smtp.helo=helo.test\ndomain: helo.test\nreason: matched ip\n"},
	}
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import spf").Run() != nil {
		testutil.MissingPeer(t, "pyspf (python3-spf) not installed: run scripts/test-deps.sh")
	}
	_, port, err := net.SplitHostPort(z.Addr)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"../internal/spf/testdata/pyspf.py", port, "1"}
	for _, tc := range cases {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "spf", "check", "--ip", "127.0.0.2",
			"--helo", tc.helo, "--from", tc.from, "--resolver", z.Addr, "--timeout", "1s")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, tc.want) {
			t.Errorf("tern spf check --from %q: status %d, stderr %q\n%s\nwant %q...", tc.from, code, errOut, out, tc.want)
		}
		args = append(args, "127.0.0.2", tc.helo, tc.from)
	}
	out, errOut, code := runTool(t, 30*time.Second, "", py, args...)
	got := strings.Fields(out)
	if code != 0 || len(got) != len(cases) {
		t.Fatalf("pyspf: status %d, stderr %s\n%s", code, errOut, out)
	}
	for i, tc := range cases {
		if want := strings.TrimPrefix(strings.SplitN(tc.want, "\n", 2)[0], "result: "); got[i] != want {
			t.Errorf("--from %q: pyspf says %s, tern %s", tc.from, got[i], want)
		}
	}
}

// TestSPFCheckUsage: a bad address or a missing HELO name is the caller's mistake.
func TestSPFCheckUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"spf", "check", "--ip", "300.1.1.1", "--helo", "h.test"}, `tern spf check: --ip "300.1.1.1" is not an IP address; see 'tern spf check --help'`},
		{[]string{"spf", "check", "--ip", "192.0.2.1"}, `tern spf check: --helo is required; see 'tern spf check --help'`},
		{[]string{"spf", "check", "--ip", "192.0.2.1", "--helo", "h.test", "--resolver", "nowhere"}, `tern spf check: --resolver "nowhere": want HOST:PORT, like 127.0.0.1:25 or [::1]:25 (missing port in address); see 'tern spf check --help'`},
		{[]string{"spf"}, `tern spf: missing command (check); see 'tern spf --help'`},
	} {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, tc.args...)
		if code != 2 || out != "" || errOut != tc.want+"\n" {
			t.Errorf("tern %s: status %d, stdout %q\nstderr %q\nwant   %q", strings.Join(tc.args, " "), code, out, errOut, tc.want+"\n")
		}
	}
}
