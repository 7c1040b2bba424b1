package smtpserver

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/spf"
)

// fakeSPF answers by the MAIL FROM domain; a domain "dns-down.test" is a temperror.
type fakeSPF struct{}

func (fakeSPF) Check(_ context.Context, _ net.IP, helo, from string) spf.Outcome {
	o := spf.Outcome{MailFrom: from, Result: spf.Pass}
	if from == "" {
		o.Helo, o.MailFrom = helo, "postmaster@"+helo
	}
	if strings.HasSuffix(from, "@dns-down.test") {
		o.Result = spf.TempError
	}
	return o
}

// fakeDKIM passes a message with an "X-Signed: d=DOMAIN" field (a temperror for
// dns-down.test and its subdomains), and keeps what it read.
type fakeDKIM struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeDKIM) Verify(_ context.Context, r io.Reader) (dkim.Verification, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return dkim.Verification{}, err
	}
	f.mu.Lock()
	f.seen = append(f.seen, string(b))
	f.mu.Unlock()
	_, rest, ok := strings.Cut(string(b), "X-Signed: d=")
	if !ok {
		return dkim.Verification{Results: []dkim.Result{{Status: dkim.None}}}, nil
	}
	d, _, _ := strings.Cut(rest, "\r\n")
	st := dkim.Pass
	if d == "dns-down.test" || strings.HasPrefix(d, "dns-down.") {
		st = dkim.TempError
	}
	return dkim.Verification{Results: []dkim.Result{{Status: st, Domain: d, Selector: "s1", HeaderB: "abc/def+ghi="}}}, nil
}

// Mail from other servers gets one Authentication-Results field on top with the SPF result of
// its envelope sender (or HELO name) and the DKIM result of each signature; a field claiming
// our authserv-id is removed from what the client sent (DKIM still sees it as sent); a
// temperror is recorded, or answered 451 4.4.3 when policy says so; authenticated mail is not
// judged.
func TestAuthenticationResults(t *testing.T) {
	const (
		mail = `
			S: 220
			C: EHLO client.example.org
			S: 250
			C: MAIL FROM:<alice@example.org>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250`
		forged = "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=x@y\r\n"
	)
	for _, tc := range []struct {
		name, transcript string
		deferTemp        bool
		want             string // the Authentication-Results field, "" for none
		seen             string // what DKIM read, "" for no check
	}{
		{"signed", mail + `
			C: DATA
			S: 354
			C: X-Signed: d=example.org
			C: Subject: hi
			C:
			C: body
			C: .
			S: 250 2.0.0 Ok: queued`, false,
			"Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=alice@example.org;\r\n\tdkim=pass header.d=example.org header.s=s1 header.b=\"abc/def+ghi=\"\r\n",
			"X-Signed: d=example.org\r\nSubject: hi\r\n\r\nbody\r\n"},
		{"forged-removed-bdat", mail + `
			W: BDAT 69\r\nAuthentication-Results: mx.example.test; spf=pass smtp.mailfrom=x@y\r\n
			S: 250
			W: BDAT 15 LAST\r\nSubject: hi\r\n\r\n
			S: 250 2.0.0 Ok: queued`, false,
			"Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=alice@example.org;\r\n\tdkim=none\r\n",
			forged + "Subject: hi\r\n\r\n"},
		{"null-sender-helo", `
			S: 220
			C: EHLO client.example.org
			S: 250
			C: MAIL FROM:<>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			C: Subject: bounce
			C: .
			S: 250 2.0.0 Ok: queued`, false,
			"Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.helo=client.example.org;\r\n\tdkim=none\r\n",
			"Subject: bounce\r\n"},
		{"temperror-recorded", `
			S: 220
			C: EHLO client.example.org
			S: 250
			C: MAIL FROM:<a@dns-down.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			C: X-Signed: d=dns-down.test
			C: .
			S: 250 2.0.0 Ok: queued`, false,
			"Authentication-Results: mx.example.test;\r\n\tspf=temperror smtp.mailfrom=a@dns-down.test;\r\n\tdkim=temperror header.d=dns-down.test header.s=s1 header.b=\"abc/def+ghi=\"\r\n",
			"X-Signed: d=dns-down.test\r\n"},
		{"temperror-deferred", mail + `
			C: DATA
			S: 354
			C: X-Signed: d=dns-down.test
			C: .
			S: 451 4.4.3 Temporary DNS failure
			C: MAIL FROM:<a@dns-down.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 0 LAST\r\n
			S: 451 4.4.3
			C: QUIT
			S: 221`, true, "", "X-Signed: d=dns-down.test\r\n|"},
		{"authenticated-not-judged", loginRcptGiven + `
			C: DATA
			S: 354
			C: ` + strings.TrimSuffix(forged, "\r\n") + `
			C: Subject: mine
			C: .
			S: 250 2.0.0 Ok: queued`, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dk := &fakeDKIM{}
			ts := newTestServer(t, func(o *Options) {
				withAuth(nil)(o)
				o.Authentication = &Authentication{SPF: fakeSPF{}, DKIM: dk, Policy: policy.Inbound{Check: true, Defer: tc.deferTemp}}
			})
			ts.dial(t, RoleMX).run(tc.transcript)
			dk.mu.Lock()
			seen := strings.Join(dk.seen, "|")
			dk.mu.Unlock()
			if seen != tc.seen {
				t.Errorf("DKIM read %q, want %q", seen, tc.seen)
			}
			if tc.deferTemp {
				if n := len(ts.spool.messages()); n != 0 {
					t.Fatalf("%d messages stored after 451", n)
				}
				return
			}
			m := lastMessage(t, ts, 1)
			if m.env.Prepend != tc.want {
				t.Errorf("Prepend:\n%q\nwant\n%q", m.env.Prepend, tc.want)
			}
			stored := m.body.String()
			if strings.Contains(stored, "Authentication-Results") {
				t.Errorf("stored message keeps a forged field:\n%q", stored)
			}
			if m.env.Size != int64(len(m.env.Prepend)+len(stored)) {
				t.Errorf("envelope size %d, stored %d+%d octets", m.env.Size, len(m.env.Prepend), len(stored))
			}
		})
	}
}

// The field parses with go-msgauth's authres (an independent reader of RFC 8601) as what was
// meant, and values that are not tokens are quoted.
func TestAuthResultsField(t *testing.T) {
	v := dkim.Verification{Results: []dkim.Result{
		{Status: dkim.Pass, Domain: "example.org", Selector: "s1", HeaderB: "abc/def+ghi="},
		{Status: dkim.Fail, Domain: "list.example", Selector: "x"},
	}}
	f := authResults("mx.example.test", spf.Outcome{Result: spf.SoftFail, MailFrom: `"a b"@example.org`}, v, nil)
	if !strings.Contains(f, `smtp.mailfrom="\"a b\"@example.org"`) {
		t.Errorf("mailfrom not quoted: %q", f)
	}
	f = authResults("mx.example.test", spf.Outcome{Result: spf.Pass, MailFrom: "alice@example.org"}, v, nil)
	name, value, _ := strings.Cut(strings.NewReplacer("\r\n\t", " ").Replace(strings.TrimSuffix(f, "\r\n")), ":")
	id, results, err := authres.Parse(value)
	if name != "Authentication-Results" || err != nil || id != "mx.example.test" || len(results) != 3 {
		t.Fatalf("authres.Parse(%q) = %q, %#v, %v", value, id, results, err)
	}
	if r, ok := results[0].(*authres.SPFResult); !ok || r.Value != authres.ResultPass || r.From != "alice@example.org" {
		t.Errorf("spf: %#v", results[0])
	}
	if r, ok := results[1].(*authres.DKIMResult); !ok || r.Value != authres.ResultPass || r.Domain != "example.org" {
		t.Errorf("dkim 1: %#v", results[1])
	}
	if r, ok := results[2].(*authres.DKIMResult); !ok || r.Value != authres.ResultFail || r.Domain != "list.example" {
		t.Errorf("dkim 2: %#v", results[2])
	}
}
