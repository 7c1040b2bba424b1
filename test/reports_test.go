package test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Reports name who said it (RFC 3464 §2.3.5, §2.3.6): "Diagnostic-Code: smtp;" and Remote-MTA
// only for a remote server's own reply, X-Tern for what tern found itself.

// TestReportsWhoSaidIt: a recipient whose server answered 451 is returned by `tern queue
// bounce`, and the report quotes that reply, with the server as Remote-MTA; a domain that does
// not exist in DNS bounces at once with tern's own finding, no "smtp;" in sight.
func TestReportsWhoSaidIt(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "1h"})
	// mx.d.test is a real Postfix that answers every RCPT for someone@d.test with a 4xx.
	access := filepath.Join(t.TempDir(), "busy")
	if err := os.WriteFile(access, []byte("someone@d.test 451 4.2.0 Mailbox busy, try later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startPostfixOpts(t, postfixOpts{addr: net.JoinHostPort(deadIP, w.Port), domain: "d.test",
		mainCf: "smtpd_recipient_restrictions = check_recipient_access texthash:" + access + ", permit\n"})

	t.Run("admin bounce after a remote 4xx", func(t *testing.T) {
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{"someone@d.test"}, Tok: tok})
		waitLog(t, w.A, 15*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=1")
		queueOK(t, w.A, "bounce", id)
		r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient":   `rfc822; someone@d\.test`,
			"Action":            "failed",
			"Status":            `5\.0\.0`,
			"Remote-MTA":        `dns; mx\.d\.test`,
			"Diagnostic-Code":   `smtp; 451 4\.2\.0 .*Mailbox busy, try later`,
			"Last-Attempt-Date": "",
		})
		mustMatch(t, "the human part", r.Human, `(?m)^<someone@d\.test>: returned to sender by the administrator; `+
			`last attempt: host mx\.d\.test said: 451 4\.2\.0 .*Mailbox busy, try later\r?$`)
	})

	t.Run("no such domain", func(t *testing.T) {
		tok := token(t)
		w.submit(t, outMsg{Rcpts: []string{"someone@nx.test"}, Tok: tok})
		msg := w.A.WaitMessage(aliceA, tok, 15*time.Second)
		r := parseDSN(t, msg, testHostname, aliceA)
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient": `rfc822; someone@nx\.test`,
			"Action":          "failed",
			"Status":          `5\.1\.2`,
			"Remote-MTA":      "",
			"Diagnostic-Code": `X-Tern; recipient domain nx\.test does not exist`,
		})
		mustMatch(t, "the human part", r.Human, `(?m)^<someone@nx\.test>: recipient domain nx\.test does not exist\r?$`)
		mustNotMatch(t, "the report on a domain tern found missing", msg, `(?i)^Diagnostic-Code: *smtp;`)
	})
}

// TestRequireTLSReport: alice sends with REQUIRETLS; b.test's MX answer is DNSSEC-validated,
// but B's certificate is self-signed, so no host of b.test takes the message over the TLS it
// asks for. RFC 8689 §4.2.1: alice gets a report at the first attempt, with 5.7.30 and
// REQUIRETLS named, not a retry and a generic expiry days later; B never gets the message.
func TestRequireTLSReport(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{Schedule: "1h"})
	w.DNS.SetSecure("b.test")
	tok := token(t)
	d := ehlod(t, w.A.Submissions, true)
	d.authPlain(aliceA, alicePW)
	id := d.transaction(outMsg{MailParams: "REQUIRETLS", Rcpts: []string{bobB}, Tok: tok})
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
	checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
		"Final-Recipient": `rfc822; bob@b\.test`,
		"Action":          "failed",
		"Status":          `5\.7\.30`,
		"Remote-MTA":      "",
		"Diagnostic-Code": `X-Tern; REQUIRETLS support required: .*mx\.b\.test.*`,
	})
	waitLog(t, w.A, 5*time.Second, 1, "delivery failed", "msgid="+id, "attempt=1")
	if got := messagesWith(w.B, bobB, tok); len(got) != 0 {
		t.Errorf("B got a REQUIRETLS message over TLS that A could not verify")
	}
}
