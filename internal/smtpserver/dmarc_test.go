package smtpserver

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/spf"
)

// dmarcZone answers the _dmarc TXT queries of the DMARC tests; _dmarc.dns-down.test times out.
type dmarcZone struct{}

func (dmarcZone) Lookup(_ context.Context, name string, qtype uint16) (resolver.Answer, error) {
	recs := map[string]string{
		"_dmarc.reject.test.":     "v=DMARC1; p=reject; sp=quarantine",
		"_dmarc.quarantine.test.": "v=DMARC1; p=quarantine",
		"_dmarc.none.test.":       "v=DMARC1; p=none",
		"_dmarc.example.org.":     "v=DMARC1; p=reject",
	}
	if name == "_dmarc.dns-down.test." {
		return resolver.Answer{}, &resolver.Error{Name: name, Qtype: qtype, Err: resolver.ErrTimeout}
	}
	r, ok := recs[name]
	if !ok {
		return resolver.Answer{NXDomain: true}, nil
	}
	return resolver.Answer{RRs: []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT}, Txt: []string{r}}}}, nil
}

// DMARC after SPF and DKIM: an aligned pass is recorded, a failure is refused with 550 5.7.1
// naming the reason (and the session goes on), quarantined, or recorded only, as the From
// domain's policy and local policy say; each judged message is handed to the recorder once.
func TestDMARC(t *testing.T) {
	const mailFrom = `
			S: 220
			C: EHLO client.example.org
			S: 250
			C: MAIL FROM:<alice@%s>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354`
	mail := func(envFrom string) string { return strings.Replace(mailFrom, "%s", envFrom, 1) }
	const ar = "Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=alice@"
	for _, tc := range []struct {
		name, transcript string
		mode             policy.DMARCMode
		deferTemp        bool
		stored           int
		want             string // the end of the Authentication-Results field
		quarantine       bool
		recorded         dmarc.Result // "": nothing recorded
	}{
		{"aligned-spf", mail("reject.test") + `
			C: From: Alice <alice@reject.test>
			C:
			C: hi
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"reject.test;\r\n\tdkim=none;\r\n\tdmarc=pass (p=reject dis=none) header.from=reject.test\r\n", false, dmarc.Pass},
		{"aligned-dkim", mail("bulk.example") + `
			C: X-Signed: d=mail.reject.test
			C: From: alice@reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=pass header.d=mail.reject.test header.s=s1 header.b=\"abc/def+ghi=\";\r\n\tdmarc=pass (p=reject dis=none) header.from=reject.test\r\n", false, dmarc.Pass},
		{"reject", mail("bulk.example") + `
			C: X-Signed: d=bulk.example
			C: From: "Your Bank" <security@reject.test>
			C: .
			S: 550 5.7.1 Message rejected by the DMARC policy of reject.test: neither SPF nor DKIM passed for an aligned domain
			C: MAIL FROM:<alice@reject.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 25 LAST\r\nFrom: alice@reject.test\r\n
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"reject.test;\r\n\tdkim=none;\r\n\tdmarc=pass (p=reject dis=none) header.from=reject.test\r\n", false, dmarc.Pass},
		{"reject-bdat", mail("bulk.example") + `
			C: .
			S: 250
			C: MAIL FROM:<alice@bulk.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 27 LAST\r\nFrom: mallory@reject.test\r\n
			S: 550 5.7.1 Message rejected by the DMARC policy of reject.test`, "", false, 1,
			"", false, dmarc.Fail},
		{"quarantine", mail("bulk.example") + `
			C: From: a@quarantine.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test\r\n", true, dmarc.Fail},
		{"sp-quarantine", mail("bulk.example") + `
			C: From: a@sub.reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=fail (p=quarantine dis=quarantine) header.from=sub.reject.test\r\n", true, dmarc.Fail},
		{"none", mail("bulk.example") + `
			C: From: a@none.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=fail (p=none dis=none) header.from=none.test\r\n", false, dmarc.Fail},
		{"local-quarantine", mail("bulk.example") + `
			C: From: a@reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, policy.DMARCQuarantine, false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=fail (p=reject dis=quarantine) header.from=reject.test\r\n", true, dmarc.Fail},
		{"local-none", mail("bulk.example") + `
			C: From: a@reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, policy.DMARCNone, false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=fail (p=reject dis=none) header.from=reject.test\r\n", false, dmarc.Fail},
		{"no-record", mail("bulk.example") + `
			C: From: a@elsewhere.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=none header.from=elsewhere.test\r\n", false, dmarc.None},
		{"two-from-permerror", mail("bulk.example") + `
			C: From: a@reject.test
			C: From: b@reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=permerror\r\n", false, dmarc.PermError},
		{"temperror-recorded", mail("bulk.example") + `
			C: From: a@dns-down.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=none;\r\n\tdmarc=temperror header.from=dns-down.test\r\n", false, dmarc.TempError},
		// RFC 7489 §6.6.2: the signature of the From domain could not be checked for now, so
		// its p=reject cannot be applied: a DNS hiccup is no reason to refuse for good.
		{"aligned-dkim-temperror", mail("bulk.example") + `
			C: X-Signed: d=dns-down.reject.test
			C: From: alice@reject.test
			C: .
			S: 250 2.0.0 Ok: queued`, "", false, 1,
			"bulk.example;\r\n\tdkim=temperror header.d=dns-down.reject.test header.s=s1 header.b=\"abc/def+ghi=\";\r\n\tdmarc=temperror (p=reject dis=none) header.from=reject.test\r\n", false, dmarc.TempError},
		{"aligned-dkim-temperror-deferred", mail("bulk.example") + `
			C: X-Signed: d=dns-down.reject.test
			C: From: alice@reject.test
			C: .
			S: 451 4.4.3 Temporary DNS failure`, "", true, 0,
			"", false, ""},
		{"temperror-deferred", mail("bulk.example") + `
			C: From: a@dns-down.test
			C: .
			S: 451 4.4.3 Temporary DNS failure while checking the sender's SPF, DKIM or DMARC`, "", true, 0,
			"", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var recorded []dmarc.Evaluation
			ts := newTestServer(t, func(o *Options) {
				o.Authentication = &Authentication{
					SPF: fakeSPF{}, DKIM: &fakeDKIM{},
					DMARC:  &dmarc.Checker{Resolver: dmarcZone{}},
					Policy: policy.Inbound{Check: true, Defer: tc.deferTemp, DMARCDefault: tc.mode},
					Record: func(ev dmarc.Evaluation) {
						mu.Lock()
						recorded = append(recorded, ev)
						mu.Unlock()
					},
				}
			})
			ts.dial(t, RoleMX).run(tc.transcript)
			mu.Lock()
			defer mu.Unlock()
			if tc.recorded == "" {
				if len(recorded) != 0 {
					t.Errorf("recorded %+v for a deferred message", recorded)
				}
			} else {
				ev := recorded[len(recorded)-1]
				if ev.Result != tc.recorded || ev.SourceIP != "127.0.0.1" || ev.SPF.Result != "pass" || ev.SPF.Scope != "mfrom" || ev.EnvelopeFrom == "" {
					t.Errorf("recorded %+v, want result %s with the underlying results", ev, tc.recorded)
				}
			}
			msgs := ts.spool.messages()
			if len(msgs) != tc.stored {
				t.Fatalf("%d messages stored, want %d", len(msgs), tc.stored)
			}
			if tc.stored == 0 {
				return
			}
			m := msgs[len(msgs)-1]
			if !strings.HasPrefix(m.env.Prepend, ar) || !strings.HasSuffix(m.env.Prepend, tc.want) {
				t.Errorf("Prepend:\n%q\nwant it to end with\n%q", m.env.Prepend, tc.want)
			}
			if m.env.Quarantine != tc.quarantine {
				t.Errorf("Quarantine %v, want %v", m.env.Quarantine, tc.quarantine)
			}
		})
	}
}

// The dmarc result, with its comment, parses with go-msgauth's authres as what was meant.
func TestAuthResultsDMARC(t *testing.T) {
	ev := dmarc.Evaluation{Result: dmarc.Fail, FromDomain: "example.com", Disposition: dmarc.PolicyQuarantine,
		Published: &dmarc.Published{Domain: "example.com", P: dmarc.PolicyReject, SP: dmarc.PolicyReject}}
	f := authResults("mx.example.test", spf.Outcome{Result: spf.Fail, MailFrom: "a@example.net"}, dkim.Verification{}, &ev)
	_, value, _ := strings.Cut(strings.NewReplacer("\r\n\t", " ").Replace(strings.TrimSuffix(f, "\r\n")), ":")
	_, results, err := authres.Parse(value)
	if err != nil || len(results) != 2 {
		t.Fatalf("authres.Parse(%q) = %#v, %v", value, results, err)
	}
	if r, ok := results[1].(*authres.DMARCResult); !ok || r.Value != authres.ResultFail || r.From != "example.com" {
		t.Errorf("dmarc: %#v", results[1])
	}
	if !strings.Contains(f, "dmarc=fail (p=reject dis=quarantine) header.from=example.com") {
		t.Errorf("field %q", f)
	}
}

// A bounce (MAIL FROM:<>) is aligned through its HELO name, the identity SPF checked (RFC 7489
// §4.1, RFC 7208 §2.4), and recorded with the HELO scope.
func TestDMARCNullSender(t *testing.T) {
	recorded := make(chan dmarc.Evaluation, 1)
	ts := newTestServer(t, func(o *Options) {
		o.Authentication = &Authentication{SPF: fakeSPF{}, DKIM: &fakeDKIM{},
			DMARC: &dmarc.Checker{Resolver: dmarcZone{}}, Policy: policy.Inbound{Check: true},
			Record: func(ev dmarc.Evaluation) { recorded <- ev }}
	})
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO mail.example.org
		S: 250
		C: MAIL FROM:<>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: From: Mail Delivery System <mailer-daemon@example.org>
		C: .
		S: 250 2.0.0 Ok: queued
		C: QUIT
		S: 221`)
	m := lastMessage(t, ts, 1)
	if want := "dmarc=pass (p=reject dis=none) header.from=example.org\r\n"; !strings.HasSuffix(m.env.Prepend, want) {
		t.Errorf("Prepend %q, want it to end with %q", m.env.Prepend, want)
	}
	got := <-recorded
	if got.EnvelopeFrom != "mail.example.org" || got.SPF != (dmarc.AuthResult{Domain: "mail.example.org", Scope: "helo", Result: "pass"}) || !got.SPFAligned {
		t.Errorf("recorded %+v", got)
	}
}
