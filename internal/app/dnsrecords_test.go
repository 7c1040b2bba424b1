package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
)

// TestDNSRecordsRequests: what tern dns records refuses, with the reason, before it prints
// anything; and what it prints from the configuration (relayhost, listeners).
func TestDNSRecordsRequests(t *testing.T) {
	cfg := config.Default()
	cfg.Data = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(cfg.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Domains = []string{"example.test"}
	cfg.Hostname = "mail.example.test"
	cfg.Listen.Submission = ""
	cfg.Delivery.Relayhost = "smtp.relay.test:587"
	for _, tc := range []struct {
		name string
		req  DNSRecordsRequest
		host string // the configuration's hostname, if not cfg's
		want string // in the error, or else in the output
		err  bool
	}{
		{name: "local domain, any case and final dot", req: DNSRecordsRequest{Domain: "Example.TEST."}, want: "example.test. IN MX 10 mail.example.test.\n"},
		{name: "relayhost named", req: DNSRecordsRequest{Domain: "example.test"}, want: "; Mail leaves through the relayhost smtp.relay.test, not the MX"},
		{name: "submissions only", req: DNSRecordsRequest{Domain: "example.test"}, want: "_submissions._tcp.example.test. IN SRV 0 1 465 mail.example.test.\n\n"},
		{name: "policy only", req: DNSRecordsRequest{Domain: "example.test", PolicyOnly: true, MTASTSMode: "enforce"}, want: "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 604800\n"},
		{name: "not local", req: DNSRecordsRequest{Domain: "other.test"}, err: true, want: "other.test is not a local domain"},
		{name: "bad domain", req: DNSRecordsRequest{Domain: "exa mple.test"}, err: true, want: `bad domain "exa mple.test"`},
		{name: "no hostname", req: DNSRecordsRequest{Domain: "example.test"}, host: "-", err: true, want: "no hostname: the MX record needs one"},
		{name: "single-label hostname", req: DNSRecordsRequest{Domain: "example.test", Hostname: "mail"}, err: true, want: "the MX needs a host name in DNS"},
		{name: "bad mode", req: DNSRecordsRequest{Domain: "example.test", MTASTSMode: "none"}, err: true, want: `MTA-STS mode "none": want testing or enforce`},
		{name: "bad report address", req: DNSRecordsRequest{Domain: "example.test", DMARCReports: "a;b@example.test"}, err: true, want: "want a plain address"},
		{name: "report address without a domain", req: DNSRecordsRequest{Domain: "example.test", TLSReports: "reports"}, err: true, want: "want a plain address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.host == "-" {
				c.Hostname = ""
			}
			var b bytes.Buffer
			ok, err := DNSRecords(context.Background(), c, tc.req, &b)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) || b.Len() > 0 {
					t.Errorf("error %v, output %q; want an error with %q and no output", err, b.String(), tc.want)
				}
				return
			}
			if err != nil || !ok || !strings.Contains(b.String(), tc.want) {
				t.Errorf("error %v, ok %v; want %q in:\n%s", err, ok, tc.want, b.String())
			}
		})
	}
}
