package dnsrecords

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// rsaValue is as long as a 2048-bit key's record, so that it is split into two strings.
var rsaValue = "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 9)

func TestBuildGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"minimal", Params{Domain: "example.test", Hostname: "mail.example.test"}},
		{"full", Params{
			Domain: "example.test", Hostname: "mx1.example.test",
			IPs:        []net.IP{net.ParseIP("192.0.2.25"), net.ParseIP("2001:db8::25")},
			DKIM:       []DKIMKey{{Selector: "20261205-rsa", Value: rsaValue}, {Selector: "20261205-ed25519", Value: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, {Selector: "old", Value: "v=DKIM1; k=ed25519; p=AAAA", Retired: true}},
			MTASTSMode: "enforce", MTASTSMaxAge: 86400,
			DMARCReports: "reports@dmarc.example.net", TLSReports: "tls@example.test",
			Submission: true, Submissions: true,
		}},
		{"relayhost", Params{Domain: "example.test", Hostname: "mail.example.test", Relayhost: "smtp.relay.example:587", Submission: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			s := Build(tc.p)
			if err := Write(&b, s); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, b.String())
			}
			// Every line that is not a comment is a record a zone file takes as it is.
			for _, l := range strings.Split(b.String(), "\n") {
				if l == "" || strings.HasPrefix(l, ";") {
					continue
				}
				rr, err := dns.NewRR(l)
				if err != nil {
					t.Errorf("%q: %v", l, err)
					continue
				}
				if txt, ok := rr.(*dns.TXT); ok {
					for _, s := range txt.Txt {
						if len(s) > 255 {
							t.Errorf("%q: a string of %d octets", l, len(s))
						}
					}
				}
			}
		})
	}
}

func TestPolicyID(t *testing.T) {
	a := Build(Params{Domain: "example.test", Hostname: "mail.example.test"})
	b := Build(Params{Domain: "example.test", Hostname: "mail.example.test", MTASTSMode: "enforce"})
	idA, idB := PolicyID(a.Policy), PolicyID(b.Policy)
	if idA == idB || len(idA) > 32 || strings.Trim(idA, "0123456789abcdef") != "" {
		t.Errorf("ids %q and %q: want distinct, 1 to 32 letters and digits", idA, idB)
	}
	if idA != PolicyID(Build(a.Params).Policy) {
		t.Error("the same policy got another id")
	}
}
