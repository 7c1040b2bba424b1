package test

import (
	"context"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/reports"
	"github.com/tern-mail/tern/internal/testutil"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// TestDMARCAndTLSReports: A holds a day of DMARC evaluations and TLS outcomes (seeded into its
// account store through the recorder, as the inbound checks and remote delivery record them);
// tern reports send --now on the running A sends them, and B receives at the rua addresses a
// DMARC aggregate report for b.test, one for ext.test (another organisation that authorizes
// b.test's addresses, RFC 7489 §7.1) and a TLS report for b.test (its _smtp._tls record), each
// DKIM-signed by example.test (dkim=pass in B's Authentication-Results), each attachment
// gzip'd and valid: the XML by RFC 7489 Appendix C's schema (xmllint), the JSON by RFC 8460's
// fields. noauth.test's address is skipped (no authorization), and nothing is sent twice.
func TestDMARCAndTLSReports(t *testing.T) {
	t.Parallel()
	xmllint := needTool(t, "xmllint")
	schema, err := filepath.Abs("../internal/reports/testdata/rfc7489-appendix-c.xsd")
	if err != nil {
		t.Fatal(err)
	}
	w := startWorld(t, worldOpts{BConfig: "[inbound]\nspf_dkim = true\n"})
	w.DNS.Add(t,
		`ext.test._report._dmarc.b.test. TXT "v=DMARC1"`,
		`_smtp._tls.b.test. TXT "v=TLSRPTv1; rua=mailto:carol@b.test"`,
	)
	// Reports come from postmaster@mx.example.test: example.test's key signs them.
	out, errOut, code := runTool(t, time.Minute, "", ternBin, "dkim", "keygen", "example.test", "--algorithm", "ed25519",
		"--selector", "rep", "--data", w.A.Data)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	w.DNS.Add(t, `rep._domainkey.example.test. TXT "`+dkimRecord(t, out, "rep", "example.test")+`"`)

	seedReports(t, w.A.Data)
	out, errOut, code = w.A.ternCmd("", []string{"reports", "send", "--now"})
	if code != 0 {
		t.Fatalf("reports send --now: exit %d: %s\n%s", code, errOut, out)
	}
	mustMatch(t, "send", out, `(?m)dmarc\s+b\.test\s+.*mailto:bob@b\.test\s+\d+\s+[0-9A-F]+$`)
	mustMatch(t, "send", out, `(?m)dmarc\s+ext\.test\s+.*mailto:carol@b\.test\s+\d+\s+[0-9A-F]+$`)
	mustMatch(t, "send", out, `(?m)dmarc\s+noauth\.test\s+.*mailto:carol@b\.test\s+0\s+\(external destination not authorized`)
	mustMatch(t, "send", out, `(?m)tlsrpt\s+b\.test\s+.*mailto:carol@b\.test\s+\d+\s+[0-9A-F]+$`)

	check := func(t *testing.T, msg string) (mail.Header, string, string, []byte) {
		t.Helper()
		mustMatch(t, "Authentication-Results", header(msg, "Authentication-Results"), `dkim=pass[^;]*header\.d=example\.test`)
		h, ct, name, att := testutil.GzipAttachment(t, []byte(msg))
		if h.Get("From") != "<postmaster@mx.example.test>" {
			t.Errorf("From %q", h.Get("From"))
		}
		return h, ct, name, att
	}
	t.Run("dmarc", func(t *testing.T) {
		for _, c := range []struct{ rcpt, domain, source string }{
			{bobB, "b.test", "192.0.2.1"},
			{carolB, "ext.test", "198.51.100.7"},
		} {
			msg := w.B.WaitMessage(c.rcpt, "Report Domain: "+c.domain+" Submitter: mx.example.test Report-ID: <", 30*time.Second)
			_, ct, name, doc := check(t, msg)
			mustMatch(t, "file name", name, `^mx\.example\.test!`+strings.ReplaceAll(c.domain, ".", `\.`)+`!\d+!\d+\.xml\.gz$`)
			if ct != "application/gzip" {
				t.Errorf("%s: attachment %s", c.domain, ct)
			}
			f := filepath.Join(t.TempDir(), "report.xml")
			if err := os.WriteFile(f, doc, 0o600); err != nil {
				t.Fatal(err)
			}
			if o, e, code := runTool(t, time.Minute, "", xmllint, "--noout", "--schema", schema, f); code != 0 {
				t.Errorf("%s: xmllint: exit %d: %s%s\n%s", c.domain, code, o, e, doc)
			}
			mustMatch(t, "report", string(doc), `<source_ip>`+c.source+`</source_ip>\s*<count>3</count>`)
		}
	})
	t.Run("tlsrpt", func(t *testing.T) {
		msg := w.B.WaitMessage(carolB, "TLS-Report-Domain: b.test", 30*time.Second)
		h, ct, name, doc := check(t, msg)
		sig := strings.Join(strings.Fields(header(msg, "DKIM-Signature")), "")
		mustMatch(t, "DKIM-Signature", sig, `h=[^;]*TLS-Report-Domain:TLS-Report-Submitter`)
		if h.Get("TLS-Report-Submitter") != "mx.example.test" || !strings.Contains(h.Get("Content-Type"), `report-type="tlsrpt"`) {
			t.Errorf("header: %v", h)
		}
		mustMatch(t, "file name", name, `^mx\.example\.test!b\.test!\d+!\d+\.json\.gz$`)
		if ct != "application/tlsrpt+gzip" {
			t.Errorf("attachment %s", ct)
		}
		if err := tlsrpt.CheckReport(doc); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
		mustMatch(t, "report", string(doc), `"total-successful-session-count": 4,\s*"total-failure-session-count": 2`)
		mustMatch(t, "report", string(doc), `"result-type": "certificate-expired"`)
	})

	// Sent once: the DMARC counts are gone, the reports listed. (The sessions that carried the
	// reports to B are TLS outcomes of their own: a TLS report of them may be due already.)
	out, errOut, code = w.A.ternCmd("", []string{"reports", "send", "--now"})
	if code != 0 || strings.Contains(out, "dmarc") {
		t.Errorf("second send: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code = w.A.ternCmd("", []string{"reports", "list"})
	if code != 0 {
		t.Fatalf("reports list: exit %d: %s", code, errOut)
	}
	mustMatch(t, "list", out, `(?s)Pending \(recorded, not reported yet\):\n(  none\n|  KIND .*\n(  tlsrpt .*\n)+)Sent`)
	mustMatch(t, "list", out, `(?m)tlsrpt\s+b\.test\s+\S+\s+\S+\s+mailto:carol@b\.test\s+[1-9]\d+\s+[0-9A-F]+$`)
}

// seedReports records, through the recorder and into data's account store, what a day of mail
// would have: DMARC evaluations for three policy domains, and TLS outcomes for b.test.
func seedReports(t *testing.T, data string) {
	t.Helper()
	store, err := sqlite.Open(filepath.Join(data, "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	}()
	rec := reports.NewRecorder(reports.RecorderOptions{Store: store})
	for _, c := range []struct{ domain, rua, ip string }{
		{"b.test", "mailto:bob@b.test!1m", "192.0.2.1"},
		{"ext.test", "mailto:carol@b.test", "198.51.100.7"},
		{"noauth.test", "mailto:carol@b.test", "203.0.113.9"},
	} {
		for i := 0; i < 3; i++ {
			rec.RecordDMARC(dmarc.Evaluation{Result: dmarc.Fail, FromDomain: c.domain,
				Published: &dmarc.Published{Domain: c.domain, P: dmarc.PolicyQuarantine, RUA: []string{c.rua}},
				Requested: dmarc.PolicyQuarantine, Disposition: dmarc.PolicyQuarantine,
				SourceIP: c.ip, EnvelopeFrom: "spammer.test",
				SPF:  dmarc.AuthResult{Domain: "spammer.test", Scope: "mfrom", Result: "softfail"},
				DKIM: []dmarc.AuthResult{{Domain: "spammer.test", Selector: "x", Result: "fail"}}})
		}
	}
	sts := tlsrpt.Outcome{PolicyDomain: "b.test", PolicyType: tlsrpt.PolicySTS,
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: mx.b.test", "max_age: 86400"}, MXHost: []string{"mx.b.test"}}
	for i := 0; i < 4; i++ {
		ok := sts
		ok.Success = true
		rec.RecordTLS(ok)
	}
	for i := 0; i < 2; i++ {
		bad := sts
		bad.Failure, bad.ReceivingMXHostname, bad.ReceivingIP, bad.AdditionalInfo = tlsrpt.CertificateExpired, "mx.b.test", "127.0.0.1", "x509: certificate has expired"
		rec.RecordTLS(bad)
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReportsFromTraffic: the reports carry what tern itself saw, with nothing seeded. A
// receives on its MX listener a message from bob@b.test (SPF passes for 127.0.0.1, so DMARC
// passes, aligned) and delivers one of alice's to B (opportunistic STARTTLS: a session with no
// policy found, recorded as a success); tern reports send --now then sends b.test a DMARC
// aggregate report with that message's row and a TLS report with that session.
func TestReportsFromTraffic(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{AConfig: "[inbound]\nspf_dkim = true\n"})
	w.DNS.Add(t,
		`b.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`_dmarc.b.test. TXT "v=DMARC1; p=reject; rua=mailto:bob@b.test"`,
		`_smtp._tls.b.test. TXT "v=TLSRPTv1; rua=mailto:carol@b.test"`,
	)

	w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: "tls-session"})
	w.B.WaitMessage(bobB, "tls-session", 30*time.Second)

	d := ehlod(t, w.A.SMTP, false)
	d.sendMessage(bobB, aliceA, "From: Bob <bob@b.test>\r\nTo: <alice@a.test>\r\nSubject: dmarc-row\r\n\r\nAligned by SPF.\r\n")
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	msg := w.A.WaitMessage(aliceA, "dmarc-row", 30*time.Second)
	mustMatch(t, "Authentication-Results", header(msg, "Authentication-Results"), `dmarc=pass[^;]*header\.from=b\.test`)

	out, errOut, code := w.A.ternCmd("", []string{"reports", "send", "--now"})
	if code != 0 {
		t.Fatalf("reports send --now: exit %d: %s\n%s", code, errOut, out)
	}
	rep := w.B.WaitMessage(bobB, "Report Domain: b.test Submitter: mx.example.test", 30*time.Second)
	_, _, _, doc := testutil.GzipAttachment(t, []byte(rep))
	mustMatch(t, "DMARC report", string(doc), `<source_ip>127\.0\.0\.1</source_ip>\s*<count>1</count>\s*<policy_evaluated>\s*<disposition>none</disposition>\s*<dkim>fail</dkim>\s*<spf>pass</spf>`)
	mustMatch(t, "DMARC report", string(doc), `<header_from>b\.test</header_from>`)
	mustMatch(t, "DMARC report", string(doc), `<p>reject</p>`)

	rep = w.B.WaitMessage(carolB, "TLS-Report-Domain: b.test", 30*time.Second)
	_, _, _, doc = testutil.GzipAttachment(t, []byte(rep))
	if err := tlsrpt.CheckReport(doc); err != nil {
		t.Errorf("%v\n%s", err, doc)
	}
	mustMatch(t, "TLS report", string(doc), `"policy-type": "no-policy-found"`)
	mustMatch(t, "TLS report", string(doc), `"total-successful-session-count": 1,\s*"total-failure-session-count": 0`)
}
