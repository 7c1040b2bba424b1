package dnsrecords

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/spf"
	"github.com/tern-mail/tern/internal/testutil"
)

func testSet(keys ...DKIMKey) Set {
	return Build(Params{
		Domain: "example.test", Hostname: "mail.example.test",
		IPs:        []net.IP{net.ParseIP("127.0.0.25")},
		DKIM:       append([]DKIMKey{{Selector: "s1", Value: rsaValue}}, keys...),
		Submission: true,
	})
}

// zone is every record of s as zone lines, for the test DNS server.
func zone(s Set) []string {
	var out []string
	for _, r := range s.Records {
		out = append(out, r.Zone())
	}
	return out
}

func spfEval(r *resolver.Resolver) SPFEval {
	c := spf.New(r, 0)
	return func(ctx context.Context, ip net.IP, helo, domain string) (string, string) {
		o := c.Check(ctx, ip, helo, "postmaster@"+domain)
		return string(o.Result), o.Reason
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, z *testutil.DNS)
		retired bool // the domain has the retired key old too
		useSPF  bool
		want    map[Kind]Status // the records not named are ok
		found   string          // in the output
	}{
		{name: "all published", want: nil},
		{name: "all published, SPF evaluated", useSPF: true},
		{name: "DMARC missing", change: func(t *testing.T, z *testutil.DNS) { z.Replace(t, "_dmarc.example.test") },
			want: map[Kind]Status{KindDMARC: Missing}},
		{name: "DMARC p=reject is stricter: ok", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_dmarc.example.test", `_dmarc.example.test. TXT "v=DMARC1;p=reject; rua=mailto:dmarc-reports@example.test"`)
		}},
		{name: "DMARC p=none differs", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_dmarc.example.test", `_dmarc.example.test. TXT "v=DMARC1; p=none"`)
		}, want: map[Kind]Status{KindDMARC: Differs}, found: `DNS has: "v=DMARC1; p=none"`},
		{name: "DKIM key differs", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "s1._domainkey.example.test", `s1._domainkey.example.test. TXT "v=DKIM1; k=rsa; p=AAAA"`)
		}, want: map[Kind]Status{KindDKIM: Differs}, found: "p=AAAA"},
		{name: "retired DKIM key removed: ok", retired: true, change: func(t *testing.T, z *testutil.DNS) { z.Replace(t, "old._domainkey.example.test") },
			found: "ok       DKIM                       old._domainkey.example.test. TXT\n         not published"},
		{name: "retired DKIM key with another key", retired: true, change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "old._domainkey.example.test", `old._domainkey.example.test. TXT "v=DKIM1; k=ed25519; p=BBBB"`)
		}, want: map[Kind]Status{"old._domainkey.example.test.": Differs}},
		{name: "DKIM key in one string, other tags: ok", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "s1._domainkey.example.test", `s1._domainkey.example.test. TXT "v=DKIM1; t=s; p=`+tags(rsaValue)["p"][:100]+`" "`+tags(rsaValue)["p"][100:]+`"`)
		}},
		{name: "MX elsewhere", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "example.test", `example.test. MX 5 mx.other.test.`, `example.test. TXT "v=spf1 mx -all"`)
		}, want: map[Kind]Status{KindMX: Differs}, found: "DNS has: 5 mx.other.test."},
		{name: "MX of another preference: ok", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "example.test", `example.test. MX 20 MAIL.example.test.`, `example.test. TXT "v=spf1 mx -all"`)
		}},
		{name: "SPF without the MX", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "example.test", `example.test. MX 10 mail.example.test.`, `example.test. TXT "v=spf1 ip4:192.0.2.1 -all"`)
		}, want: map[Kind]Status{KindSPF: Differs}, found: "does not name the MX"},
		{name: "SPF evaluated: fail", useSPF: true, change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "example.test", `example.test. MX 10 mail.example.test.`, `example.test. TXT "v=spf1 ip4:192.0.2.1 -all"`)
		}, want: map[Kind]Status{KindSPF: Differs}, found: "SPF for example.test from 127.0.0.25 is fail"},
		{name: "SPF evaluated: other mechanisms pass", useSPF: true, change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "example.test", `example.test. MX 10 mail.example.test.`, `example.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
		}},
		{name: "host SPF evaluated: fail", useSPF: true, change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "mail.example.test", `mail.example.test. A 127.0.0.25`, `mail.example.test. TXT "v=spf1 a:other.test -all"`)
		}, want: map[Kind]Status{KindHostSPF: Differs}, found: "SPF for mail.example.test from 127.0.0.25 is fail"},
		{name: "host SPF without a", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "mail.example.test", `mail.example.test. A 127.0.0.25`, `mail.example.test. TXT "v=spf1 ~all"`)
		}, want: map[Kind]Status{KindHostSPF: Differs}, found: "does not name the MX"},
		{name: "two SPF records", change: func(t *testing.T, z *testutil.DNS) {
			z.Add(t, `example.test. TXT "v=spf1 a -all"`)
		}, want: map[Kind]Status{KindSPF: Differs}, found: "DNS has 2 records"},
		{name: "other TXT records at the name are no matter", change: func(t *testing.T, z *testutil.DNS) {
			z.Add(t, `example.test. TXT "google-site-verification=x"`)
		}},
		{name: "MTA-STS id of another policy", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_mta-sts.example.test", `_mta-sts.example.test. TXT "v=STSv1; id=1"`)
		}, want: map[Kind]Status{KindMTASTS: Differs}, found: "the policy tern prints has id="},
		{name: "TLS-RPT reports elsewhere: ok, noted", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_smtp._tls.example.test", `_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=mailto:tls@reports.test,https://reports.test/tlsrpt"`)
		}, found: "reports go to mailto:tls@reports.test,https://reports.test/tlsrpt, not mailto:tls-reports@example.test as tern proposes"},
		{name: "TLS-RPT without rua", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_smtp._tls.example.test", `_smtp._tls.example.test. TXT "v=TLSRPTv1;"`)
		}, want: map[Kind]Status{KindTLSRPT: Differs}, found: "no rua="},
		{name: "TLS-RPT with an ftp rua", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_smtp._tls.example.test", `_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=ftp://reports.test/"`)
		}, want: map[Kind]Status{KindTLSRPT: Differs}, found: `rua "ftp://reports.test/": want mailto: or https: URIs`},
		{name: "TLS-RPT of another version", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "_smtp._tls.example.test", `_smtp._tls.example.test. TXT "v=TLSRPTv2; rua=mailto:tls-reports@example.test"`)
		}, want: map[Kind]Status{KindTLSRPT: Missing}},
		{name: "address and SRV missing, TLS-RPT fails", change: func(t *testing.T, z *testutil.DNS) {
			z.Replace(t, "mail.example.test", `mail.example.test. TXT "v=spf1 a -all"`)
			z.Replace(t, "_submission._tcp.example.test", `_submission._tcp.example.test. SRV 0 1 2587 mail.example.test.`)
			z.Fail("_smtp._tls.example.test", dns.RcodeServerFailure)
		}, want: map[Kind]Status{KindAddress: Missing, KindSRV: Differs, KindTLSRPT: Failed}, found: "SERVFAIL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSet()
			if tc.retired {
				s = testSet(DKIMKey{Selector: "old", Value: "v=DKIM1; k=ed25519; p=AAAA", Retired: true})
			}
			z := testutil.StartDNS(t, zone(s)...)
			if tc.change != nil {
				tc.change(t, z)
			}
			c, err := resolver.NewClient(z.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r := resolver.New(c, resolver.Options{})
			var eval SPFEval
			if tc.useSPF {
				eval = spfEval(r)
			}
			rs := Check(context.Background(), r, s, Checkers{SPF: eval})
			var b bytes.Buffer
			good, err := WriteResults(&b, rs)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", b.String())
			if len(rs) != len(s.Records) {
				t.Fatalf("%d results for %d records", len(rs), len(s.Records))
			}
			for _, r := range rs {
				want := OK
				if w, ok := tc.want[r.Record.Kind]; ok {
					want = w
				}
				if w, ok := tc.want[Kind(r.Record.Name)]; ok {
					want = w
				}
				if r.Status != want {
					t.Errorf("%s %s: %s (%s), want %s", r.Record.Kind, r.Record.Name, r.Status, r.Found, want)
				}
			}
			if good != (len(tc.want) == 0) {
				t.Errorf("all good: %v, want %v", good, len(tc.want) == 0)
			}
			if !strings.Contains(b.String(), tc.found) {
				t.Errorf("the output lacks %q", tc.found)
			}
		})
	}
}
