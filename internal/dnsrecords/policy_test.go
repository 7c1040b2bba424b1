package dnsrecords

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestCheckPolicy serves the MTA-STS policy file from a loopback HTTPS server, which the test
// DNS server names as mta-sts.example.test, with a certificate the check trusts (its own root
// pool, as SSL_CERT_FILE gives tern's) or not; the file is compared with the one tern prints.
func TestCheckPolicy(t *testing.T) {
	t.Parallel()
	s := testSet()
	const host = "mta-sts.example.test"
	trusted := testutil.SelfSigned(t, host)
	wrongName := testutil.SelfSigned(t, "other.example.test") // trusted too
	untrusted := testutil.SelfSigned(t, host)
	for _, tc := range []struct {
		name    string
		policy  string // served; "" for tern's own
		status  int    // default 200
		ctype   string // default text/plain
		cert    *tls.Certificate
		noAddr  bool
		want    Status
		found   []string // in the output, each
		notDiff []string // not in the output
	}{
		{name: "tern's policy", want: OK},
		{name: "CRLF, an extension, wildcard mx", policy: "version: STSv1\r\nmode: testing\r\nmx: *.example.test\r\nmax_age: 604800\r\next: 1\r\n", want: OK},
		{name: "a backup MX too", policy: "version: STSv1\nmode: testing\nmx: backup.other.test\nmx: mail.example.test\nmax_age: 604800\n", want: OK},
		{name: "no policy host", noAddr: true, want: Missing, found: []string{"mta-sts.example.test has no address"}},
		{name: "not found", status: http.StatusNotFound, want: Missing, found: []string{"404 Not Found", "--mta-sts-policy"}},
		{name: "enforce, where tern prints testing", policy: "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 604800\n", want: Differs,
			found: []string{"mode: enforce, tern prints mode: testing"}, notDiff: []string{"mx:", "max_age:"}},
		{name: "mx elsewhere, shorter max_age", policy: "version: STSv1\nmode: testing\nmx: mx.other.test\nmx: *.mail.example.test\nmax_age: 86400\n", want: Differs,
			found: []string{"mx: no pattern covers mail.example.test (the file has mx: mx.other.test, *.mail.example.test)", "max_age: 86400, tern prints max_age: 604800"}, notDiff: []string{"mode:"}},
		{name: "invalid", policy: "version: STSv1\nmode: testing\nmax_age: 604800\n", want: Differs, found: []string{"not a valid policy", "mode testing without mx"}},
		{name: "served as HTML", ctype: "text/html", want: Differs, found: []string{`content type "text/html"`}},
		{name: "redirect", status: http.StatusFound, want: Failed, found: []string{"302 Found to https://elsewhere.test/", "redirects are not followed"}},
		{name: "untrusted certificate", cert: &untrusted, want: Failed, found: []string{"the certificate of mta-sts.example.test does not verify", "unknown authority"}},
		{name: "certificate for another name", cert: &wrongName, want: Failed,
			found: []string{"does not verify", "valid for other.example.test, not mta-sts.example.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cert := trusted
			if tc.cert != nil {
				cert = *tc.cert
			}
			policy := s.Policy
			if tc.policy != "" {
				policy = tc.policy
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host != host || r.URL.Path != mtasts.Path {
					http.Error(w, "wrong URL", http.StatusBadRequest)
					return
				}
				switch tc.status {
				case 0:
				case http.StatusFound:
					http.Redirect(w, r, "https://elsewhere.test/", tc.status)
					return
				default:
					http.Error(w, "no", tc.status)
					return
				}
				ct := tc.ctype
				if ct == "" {
					ct = "text/plain"
				}
				w.Header().Set("Content-Type", ct)
				_, _ = w.Write([]byte(policy)) // a failed write shows as the check failing
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			z := testutil.StartDNS(t, zone(s)...)
			if !tc.noAddr {
				z.Add(t, host+". A 127.0.0.1")
			}
			c, err := resolver.NewClient(z.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r := resolver.New(c, resolver.Options{})
			roots := x509.NewCertPool()
			roots.AddCert(trusted.Leaf)
			roots.AddCert(wrongName.Leaf)
			client := mtasts.NewClient(nil, AddrLookup(r), srv.Listener.Addr().(*net.TCPAddr).Port, roots)
			fetch := func(ctx context.Context, domain string) (*mtasts.Policy, error) {
				return mtasts.Fetch(ctx, client, domain)
			}

			rs := Check(context.Background(), r, s, Checkers{Policy: fetch})
			var b bytes.Buffer
			if _, err := WriteResults(&b, rs); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", b.String())
			if len(rs) != len(s.Records)+1 {
				t.Fatalf("%d results for %d records and the policy", len(rs), len(s.Records))
			}
			for i, r := range rs {
				want := OK
				if r.Record.Kind == KindMTASTSPolicy {
					want = tc.want
					if rs[i-1].Record.Kind != KindMTASTS {
						t.Errorf("the policy's result follows %s, not the _mta-sts record", rs[i-1].Record.Kind)
					}
				}
				if r.Status != want {
					t.Errorf("%s %s: %s (%s), want %s", r.Record.Kind, r.Record.Name, r.Status, r.Found, want)
				}
			}
			out := b.String()
			if line := fmt.Sprintf("%-8s %-26s %s\n", tc.want, KindMTASTSPolicy, mtasts.URL("example.test")); !strings.Contains(out, line) {
				t.Errorf("the output lacks the line %q", line)
			}
			for _, f := range tc.found {
				if !strings.Contains(out, f) {
					t.Errorf("the output lacks %q", f)
				}
			}
			for _, f := range tc.notDiff {
				if strings.Contains(out, f) {
					t.Errorf("the output has %q", f)
				}
			}
		})
	}
}
