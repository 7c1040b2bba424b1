package test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestDNSRecords: tern dkim keygen, then tern dns records; the records it prints, loaded into
// the test DNS server, with the policy file it prints served over HTTPS at mta-sts.DOMAIN, all
// check ok; a policy file of another mode and MX differs line by line, a missing one is
// missing, one behind an untrusted certificate an error; with a record removed, --check says
// missing and exits 1.
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
	policy, errOut, code := runTool(t, 30*time.Second, "", ternBin, append(base, "--mta-sts-policy")...)
	if code != 0 || errOut != "" {
		t.Fatalf("tern dns records --mta-sts-policy: status %d, stderr %q", code, errOut)
	}
	ps := startPolicyHost(t, policy)
	z := testutil.StartDNS(t, zone...)
	z.Add(t, "mta-sts.example.test. A "+policyHostIP)
	// The policy host is found through --resolver and reached on delivery.mta_sts_port, as
	// delivery does; SSL_CERT_FILE holds its certificate, the only root tern then trusts.
	conf := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[delivery]\nmta_sts_port = %d\n", ps.port)), 0o600); err != nil {
		t.Fatal(err)
	}
	check := append(base, "--check", "--resolver", z.Addr, "--config", conf)
	runCheck := func() (string, string, int) {
		t.Helper()
		return runToolEnv(t, 30*time.Second, []string{"SSL_CERT_FILE=" + ps.roots}, nil, ternBin, check...)
	}
	out, errOut, code = runCheck()
	if code != 0 || errOut != "" || strings.Count(out, "\n") != len(zone)+1 || regexp.MustCompile(`(?m)^(missing|differs|error) `).MatchString(out) {
		t.Fatalf("tern dns records --check with every record: status %d, stderr %q, want %d lines ok:\n%s", code, errOut, len(zone)+1, out)
	}
	mustMatch(t, "--check with the policy served", out, `^ok +MTA-STS policy +https://mta-sts\.example\.test/\.well-known/mta-sts\.txt$`)
	if n := ps.fetches.Load(); n != 1 {
		t.Errorf("policy fetched %d times, want 1", n)
	}

	// The policy file: another mode and MX, then missing, then behind a certificate that
	// SSL_CERT_FILE does not vouch for.
	ps.policy.Store("version: STSv1\nmode: enforce\nmx: mx.other.test\nmax_age: 604800\n")
	out, errOut, code = runCheck()
	if code != 1 || errOut != "" {
		t.Fatalf("--check with another policy: status %d, stderr %q, want 1\n%s", code, errOut, out)
	}
	mustMatch(t, "--check with another policy", out, `^differs +MTA-STS policy +https://mta-sts\.example\.test/\.well-known/mta-sts\.txt$`)
	mustMatch(t, "--check with another policy", out, `^ +mode: enforce, tern prints mode: testing`)
	mustMatch(t, "--check with another policy", out, `^ +mx: no pattern covers mail\.example\.test \(the file has mx: mx\.other\.test\)`)
	ps.policy.Store("")
	out, _, code = runCheck()
	if code != 1 {
		t.Errorf("--check without a policy: status %d, want 1", code)
	}
	mustMatch(t, "--check without a policy", out, `^missing +MTA-STS policy +https://mta-sts\.example\.test/\.well-known/mta-sts\.txt$`)
	mustMatch(t, "--check without a policy", out, `404 Not Found`)
	ps.policy.Store(policy)
	ps.untrusted.Store(true)
	out, _, code = runCheck()
	if code != 1 {
		t.Errorf("--check with an untrusted certificate: status %d, want 1", code)
	}
	mustMatch(t, "--check with an untrusted certificate", out, `^error +MTA-STS policy +https://mta-sts\.example\.test/\.well-known/mta-sts\.txt$`)
	mustMatch(t, "--check with an untrusted certificate", out, `the certificate of mta-sts\.example\.test does not verify .*unknown authority`)
	ps.untrusted.Store(false)

	z.Replace(t, "_dmarc.example.test")
	out, errOut, code = runCheck()
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

// policyHostIP is where TestDNSRecords serves mta-sts.example.test: only its DNS server says so.
const policyHostIP = "127.0.0.7"

// policyHost serves an MTA-STS policy over HTTPS, as mta-sts.example.test, with a certificate
// that roots (a PEM file) holds, or one it does not.
type policyHost struct {
	port      int
	roots     string
	policy    atomic.Value // string; "" for 404
	untrusted atomic.Bool
	fetches   atomic.Int32
}

func startPolicyHost(t *testing.T, policy string) *policyHost {
	t.Helper()
	const name = "mta-sts.example.test"
	good, bad := testutil.SelfSigned(t, name), testutil.SelfSigned(t, name)
	ps := &policyHost{roots: filepath.Join(t.TempDir(), "roots.pem")}
	ps.policy.Store(policy)
	if err := os.WriteFile(ps.roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good.Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := ps.policy.Load().(string)
		if r.Host != name || r.URL.Path != "/.well-known/mta-sts.txt" || p == "" {
			http.NotFound(w, r)
			return
		}
		ps.fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprint(w, p) // a failed write shows as the check failing
	}))
	ln, err := net.Listen("tcp", net.JoinHostPort(policyHostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if ps.untrusted.Load() {
			return &bad, nil
		}
		return &good, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ps.port = ln.Addr().(*net.TCPAddr).Port
	return ps
}
