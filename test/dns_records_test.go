package test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestDNSRecords: tern dkim keygen, then tern dns records; the records it prints, loaded into
// the test DNS server, all check ok; with one removed, --check says missing and exits 1.
func TestDNSRecords(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	// The data directory is made by tern user add, as an administrator would.
	if out, errOut, code := runTool(t, 30*time.Second, "pw\n", ternBin, "user", "add", "a@example.test", "--password-stdin", "--data", data, "--domain", "example.test"); code != 0 {
		t.Fatalf("tern user add: status %d\n%s%s", code, out, errOut)
	}
	for _, alg := range []string{"rsa", "ed25519"} {
		if out, errOut, code := runTool(t, 60*time.Second, "", ternBin, "dkim", "keygen", "example.test", "--algorithm", alg, "--data", data); code != 0 {
			t.Fatalf("tern dkim keygen: status %d\n%s%s", code, out, errOut)
		}
	}
	base := []string{"dns", "records", "example.test", "--data", data, "--domain", "example.test", "--hostname", "mail.example.test", "--ip", "127.0.0.25"}
	out, errOut, code := runTool(t, 30*time.Second, "", ternBin, base...)
	if code != 0 || errOut != "" {
		t.Fatalf("tern dns records: status %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		`^example\.test\. IN MX 10 mail\.example\.test\.$`,
		`^mail\.example\.test\. IN A 127\.0\.0\.25$`,
		`^example\.test\. IN TXT "v=spf1 mx -all"$`,
		`^\d{8}-rsa\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=rsa; p=[^"]+" "[^"]+"$`,
		`^\d{8}-ed25519\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=ed25519; p=[^"]+"$`,
		`^_dmarc\.example\.test\. IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example\.test"$`,
		`^_mta-sts\.example\.test\. IN TXT "v=STSv1; id=[0-9a-f]+"$`,
		`^_smtp\._tls\.example\.test\. IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@example\.test"$`,
		`^;   mode: testing$`,
	} {
		mustMatch(t, "tern dns records", out, want)
	}
	var zone []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			zone = append(zone, l)
		}
	}
	z := testutil.StartDNS(t, zone...)
	check := append(base, "--check", "--resolver", z.Addr)
	out, errOut, code = runTool(t, 30*time.Second, "", ternBin, check...)
	if code != 0 || errOut != "" || strings.Count(out, "\n") != len(zone) || regexp.MustCompile(`(?m)^(missing|differs|error) `).MatchString(out) {
		t.Fatalf("tern dns records --check with every record: status %d, stderr %q, want %d lines ok:\n%s", code, errOut, len(zone), out)
	}

	z.Replace(t, "_dmarc.example.test")
	out, errOut, code = runTool(t, 30*time.Second, "", ternBin, check...)
	if code != 1 || errOut != "" {
		t.Fatalf("tern dns records --check without DMARC: status %d, stderr %q, want 1", code, errOut)
	}
	mustMatch(t, "--check without DMARC", out, `^missing +DMARC +_dmarc\.example\.test\. TXT$`)
	mustMatch(t, "--check without DMARC", out, `^ok +DKIM +\d{8}-rsa\._domainkey\.example\.test\. TXT$`)

	// Not a local domain: a clear error.
	out, errOut, code = runTool(t, 30*time.Second, "", ternBin, "dns", "records", "other.test", "--data", data, "--domain", "example.test", "--hostname", "mail.example.test")
	if code != 1 || out != "" || !strings.Contains(errOut, "other.test is not a local domain") {
		t.Errorf("tern dns records other.test: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}
