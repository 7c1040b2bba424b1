package test

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Remote delivery through the real binary, between two tern instances and a Postfix, routed
// by MX records from a DNS server in the test (see mxworld_test.go): what A relays for alice
// arrives at the MX of the recipient's domain, over STARTTLS; a recipient refused with a 5xx
// comes back to alice as an RFC 3464 report that Python's email package parses; NOTIFY=NEVER
// and the null sender get no report; a null MX bounces at once.

// TestRelayMX: one world with B and a Postfix up, several messages through A at once.
func TestRelayMX(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{
		// B is also A2's relayhost below: a smarthost lets its authenticated clients send
		// with any address.
		BConfig: "[auth]\nsender_must_own = false\n",
		// The SMTP dialogue of every delivery in A's log, to see the pipelined commands.
		AArgs: []string{"--log-level", "debug"},
	})
	// Postfix without DSN (RFC 3461), so that A reports NOTIFY=SUCCESS itself ("relayed"), and
	// without 8BITMIME and SMTPUTF8, so that what needs them cannot go there; and two
	// recipients per transaction at most.
	pf := startPostfixOpts(t, postfixOpts{addr: net.JoinHostPort(pfHostIP, w.Port), domain: "c.test",
		users:  []string{"bob@c.test", "carol@c.test", "dave@c.test", "erin@c.test"},
		mainCf: "smtpd_discard_ehlo_keywords = dsn, 8bitmime, smtputf8\nsmtpd_recipient_limit = 2\n"})

	t.Run("delivered to the MX", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
		msg := w.B.WaitMessage(bobB, tok, 15*time.Second)
		// B's trace header on top of A's: A relayed it to B over STARTTLS (ESMTPS: B's
		// self-signed certificate is good enough for opportunistic TLS), after alice's AUTH
		// at A (ESMTPA: plain text on loopback).
		rcvd := headers(msg, "Received")
		if len(rcvd) != 2 {
			t.Fatalf("%d Received headers, want 2 (B's, A's):\n%s", len(rcvd), msg)
		}
		bID := mustMatch(t, "B's Received", rcvd[0], `^Received: from mx\.example\.test \(\[127\.0\.0\.\d+\]\)\n`+
			`\t\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+ \(\d+/\d+ bits\)\)\n`+
			`\tby mx\.b\.test \(tern\) with ESMTPS id ([0-9A-F]+)\n\tfor <bob@b\.test>; `)[1]
		mustMatch(t, "A's Received", rcvd[1], `^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n`+
			`\tby mx\.example\.test \(tern\) with ESMTPA id `+id+`\n\tfor <bob@b\.test>; `)
		mustMatch(t, "message", msg, `^Return-Path: <alice@a\.test>\nDelivered-To: bob@b\.test\n`)
		if !strings.HasSuffix(msg, "\nEND-"+tok+"\n") {
			t.Fatalf("the message arrived cut:\n%s", msg)
		}
		// A's log: one connection to mx.b.test at 127.0.0.2 on port P, TLS, 1 delivered.
		conn := waitLog(t, w.A, 5*time.Second, 1, "remote: connection", "msgid="+id)[0].Text
		mustMatch(t, "A's log", conn, `remote=mx\.b\.test\[127\.0\.0\.2\]:`+w.Port+` tls="TLS 1\.3 unverified" policy=may/default code=250 result="1 delivered, 0 refused, 0 deferred"`)
		waitLog(t, w.A, 5*time.Second, 1, "delivered", "msgid="+id, "rcpt="+bobB, "attempt=1", "relay="+bHost)
		waitLog(t, w.B, 5*time.Second, 1, "queued", "msgid="+bID, "from="+aliceA)
	})

	t.Run("one recipient refused", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{carolB, "nobody@b.test"}, Tok: tok})
		w.B.WaitMessage(carolB, tok, 15*time.Second)
		dsn := w.A.WaitMessage(aliceA, tok, 15*time.Second)
		r := parseDSN(t, dsn, testHostname, aliceA)
		if r.Subject != "Undelivered Mail Returned to Sender" {
			t.Errorf("Subject %q", r.Subject)
		}
		checkFields(t, "per-message fields", r.PerMessage, map[string]string{"X-Tern-Queue-ID": id, "Arrival-Date": `.+`})
		if len(r.Recipients) != 1 {
			t.Fatalf("report on %d recipients, want only the refused one: %v", len(r.Recipients), r.Recipients)
		}
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient":   `rfc822; nobody@b\.test`,
			"Action":            "failed",
			"Status":            `5\.1\.1`,
			"Remote-MTA":        `dns; mx\.b\.test`,
			"Diagnostic-Code":   `smtp; 550 5\.1\.1 .+`,
			"Last-Attempt-Date": `.+`,
		})
		if r.ReturnedType != "message/rfc822" || !strings.Contains(r.Returned, "Subject: "+tok) || !strings.Contains(r.Returned, "END-"+tok) {
			t.Errorf("the original is not returned whole (%s):\n%s", r.ReturnedType, r.Returned)
		}
		mustMatch(t, "the human part", r.Human, `^<nobody@b\.test>: host mx\.b\.test said: 550 5\.1\.1 .*\r?$`)
		// Exactly one report, and the message is gone from A's queue: no retry after a 5xx.
		gone(t, w.A, id, 10*time.Second)
		if n := len(logLines(w.A, "remote: connection", "msgid="+id)); n != 1 {
			t.Errorf("%d connections for %s, want 1", n, id)
		}
		if n := len(logLines(w.A, "delivery report queued", "msgid="+id)); n != 1 {
			t.Errorf("A queued %d reports, want 1", n)
		}
		if n := len(messagesWith(w.A, aliceA, tok)); n != 1 {
			t.Errorf("alice got %d reports, want 1", n)
		}
	})

	t.Run("NOTIFY=NEVER", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{"nobody@b.test"}, RcptParams: "NOTIFY=NEVER", Tok: tok})
		waitLog(t, w.A, 15*time.Second, 1, "delivery failed", "msgid="+id, "rcpt=nobody@b.test")
		gone(t, w.A, id, 10*time.Second)
		// A report would have been queued before the message left the queue.
		if l := logLines(w.A, "delivery report queued", "msgid="+id); len(l) != 0 {
			t.Fatalf("A queued a report: %s", l[0].Text)
		}
		if got := messagesWith(w.A, aliceA, tok); len(got) != 0 {
			t.Fatalf("alice got a report despite NOTIFY=NEVER:\n%s", got[0])
		}
	})

	t.Run("null sender", func(t *testing.T) {
		t.Parallel()
		// A bounce of a bounce: a message from <> that fails is dropped, nobody is told.
		tok := token(t)
		id := w.submit(t, outMsg{From: "<>", Rcpts: []string{"nobody@b.test"}, Tok: tok})
		waitLog(t, w.A, 15*time.Second, 1, "no report for a message from the null sender", "msgid="+id, "action=failed")
		gone(t, w.A, id, 10*time.Second)
		if l := logLines(w.A, "delivery report queued", "msgid="+id); len(l) != 0 {
			t.Fatalf("A queued a report for a message from <>: %s", l[0].Text)
		}
		if got := messagesWith(w.A, aliceA, tok); len(got) != 0 {
			t.Fatalf("a report for a message from <> reached alice:\n%s", got[0])
		}
	})

	t.Run("NOTIFY=SUCCESS", func(t *testing.T) {
		t.Parallel()
		// B offers DSN, so A passes NOTIFY, ORCPT, RET and ENVID on and reports nothing
		// itself; B delivers and sends the success report to alice, by MX, to A.
		tok := token(t)
		envid := "envid-" + tok
		id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok, MailParams: "RET=HDRS ENVID=" + envid,
			RcptParams: "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@b.test"})
		w.B.WaitMessage(bobB, tok, 15*time.Second)
		r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), bHost, aliceA)
		if r.Subject != "Successful Mail Delivery Report" {
			t.Errorf("Subject %q", r.Subject)
		}
		checkFields(t, "per-message fields", r.PerMessage, map[string]string{"Original-Envelope-Id": envid})
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient":    `rfc822; bob@b\.test`,
			"Original-Recipient": `rfc822;Bob@b\.test`,
			"Action":             "delivered",
			"Status":             `2\.0\.0`,
		})
		if r.ReturnedType != "text/rfc822-headers" || !strings.Contains(r.Returned, "Subject: "+tok) {
			t.Errorf("returned %s:\n%s", r.ReturnedType, r.Returned)
		}
		gone(t, w.A, id, 10*time.Second) // B's report may come before A logged its delivery
		if l := logLines(w.A, "delivery report queued", "msgid="+id); len(l) != 0 {
			t.Errorf("A reported on a message B takes the reports for: %s", l[0].Text)
		}
		// B's report came to A's MX from the null sender, over STARTTLS.
		mustMatch(t, "the report's Received", headers(w.A.WaitMessage(aliceA, tok, time.Second), "Received")[0],
			`^Received: from mx\.b\.test \(\[127\.0\.0\.\d+\]\)\n\t\(using TLSv1\.3 .*\)\n\tby mx\.example\.test \(tern\) with ESMTPS id `)
		mustMatch(t, "the report", w.A.WaitMessage(aliceA, tok, time.Second), `^Return-Path: <>$`)
	})

	t.Run("null MX", func(t *testing.T) {
		t.Parallel()
		// RFC 7505: null.test takes no mail; the first attempt bounces, with no connection.
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{"someone@null.test"}, Tok: tok})
		r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient": `rfc822; someone@null\.test`,
			"Action":          "failed",
			"Status":          `5\.1\.10`,
			"Diagnostic-Code": `X-Tern; recipient domain null\.test does not accept mail \(null MX\)`,
			"Remote-MTA":      "",
		})
		waitLog(t, w.A, 5*time.Second, 1, "delivery failed", "msgid="+id, "attempt=1")
		if l := logLines(w.A, "remote: connection", "msgid="+id); len(l) != 0 {
			t.Errorf("A connected somewhere for a null MX domain: %s", l[0].Text)
		}
	})

	t.Run("Postfix", func(t *testing.T) {
		t.Parallel()
		// A to c.test, whose MX is the Postfix: one transaction with PIPELINING (MAIL, both
		// RCPTs and DATA go out before any reply is read) over STARTTLS; Postfix takes
		// bob@c.test and refuses nobody@c.test, who comes back to alice.
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{"bob@c.test", "nobody@c.test"}, Tok: tok})
		msg := pf.waitMessage(tok)
		rcvd := headers(msg, "Received")
		if len(rcvd) != 2 {
			t.Fatalf("%d Received headers, want 2 (Postfix's, A's):\n%s", len(rcvd), msg)
		}
		mustMatch(t, "Postfix's Received", rcvd[0], `^Received: from mx\.example\.test \(localhost \[127\.0\.0\.\d+\]\)\n`+
			`\tby pf\.example\.test \(Postfix\) with ESMTPS id \w+\n\tfor <bob@c\.test>; `)
		// Two recipients: A's header names none.
		mustMatch(t, "A's Received", rcvd[1], `^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with ESMTPA id `+id+`; `)
		r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
		if len(r.Recipients) != 1 {
			t.Fatalf("report on %d recipients, want 1: %v", len(r.Recipients), r.Recipients)
		}
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient": `rfc822; nobody@c\.test`,
			"Action":          "failed",
			"Status":          `5\.1\.1`,
			"Remote-MTA":      `dns; mx\.c\.test`,
			"Diagnostic-Code": `smtp; 550 5\.1\.1 <nobody@c\.test>: Recipient address rejected: User unknown in virtual mailbox table`,
		})
		// The pipelined dialogue, as A's debug log traced it after STARTTLS.
		var dialogue []string
		for _, l := range logLines(w.A, "remote: trace", "msgid="+id, "tls=true") {
			m := regexp.MustCompile(` dir=(sent|received) tls=true line=(".*"|\S+)$`).FindStringSubmatch(l.Text)
			if m != nil {
				dialogue = append(dialogue, m[1]+" "+strings.Trim(m[2], `"`))
			}
		}
		mustMatch(t, "A's dialogue with Postfix", strings.Join(dialogue, "\n"),
			`^sent MAIL FROM:<alice@a\.test>.*\nsent RCPT TO:<bob@c\.test>.*\nsent RCPT TO:<nobody@c\.test>.*\nsent DATA\n`+
				`received 250 2\.1\.0 Ok\nreceived 250 2\.1\.5 Ok\nreceived 550 5\.1\.1 <nobody@c\.test>: .*\nreceived 354 .*\n`)
		// One session: STARTTLS, then the transaction with one of two recipients taken. Postfix
		// may log the disconnect after the report is already here: wait for the line.
		disconnect := regexp.MustCompile(`disconnect from localhost\[127\.0\.0\.\d+\] ehlo=2 starttls=1 mail=1 rcpt=1/2 data=1 quit=1 `)
		waitFor(t, 10*time.Second, "Postfix's log line of the session", func() bool {
			log, _ := os.ReadFile(pf.log)
			return disconnect.Match(log)
		})
	})

	t.Run("Postfix's recipient limit", func(t *testing.T) {
		t.Parallel()
		// Postfix takes two recipients per message and answers the third "452 4.5.3 Error:
		// too many recipients": A sends those in a second transaction on the same
		// connection, at once, not at the next retry.
		tok := token(t)
		rcpts := []string{"bob@c.test", "carol@c.test", "dave@c.test", "erin@c.test"}
		id := w.submit(t, outMsg{Rcpts: rcpts, Tok: tok})
		for _, l := range waitLog(t, w.A, 15*time.Second, len(rcpts), "delivered", "msgid="+id) {
			if !strings.Contains(l.Text, " attempt=1 ") {
				t.Errorf("not delivered at the first attempt: %s", l.Text)
			}
		}
		// One session, two transactions: 4 RCPTs (2 taken, 2 "452"), then the other 2.
		// (Postfix counts its 452s for the limit among the RCPTs that went well.)
		session := regexp.MustCompile(`disconnect from localhost\[127\.0\.0\.\d+\] ehlo=2 starttls=1 mail=2 rcpt=6 data=2 quit=1 `)
		waitFor(t, 10*time.Second, "Postfix's log of the session", func() bool {
			log, _ := os.ReadFile(pf.log)
			return session.Match(log)
		})
		mustMatch(t, "A's log", w.A.Log(), `msg="remote: connection" msgid=`+id+` .* result="4 delivered, 0 refused, 0 deferred"`)
	})

	t.Run("relayed", func(t *testing.T) {
		t.Parallel()
		// Postfix here does not offer DSN: A sends no NOTIFY to it and, once Postfix took
		// the message, tells alice itself that it was relayed (RFC 3461 §5.2.2).
		tok := token(t)
		id := w.submit(t, outMsg{Rcpts: []string{"bob@c.test"}, Tok: tok, RcptParams: "NOTIFY=SUCCESS"})
		pf.waitMessage(tok)
		r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
		checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
			"Final-Recipient": `rfc822; bob@c\.test`,
			"Action":          "relayed",
			"Status":          `2\.0\.0`,
			"Remote-MTA":      `dns; mx\.c\.test`,
		})
		var sent []string
		for _, l := range logLines(w.A, "remote: trace", "msgid="+id, "dir=sent") {
			sent = append(sent, l.Text)
		}
		mustMatch(t, "A's commands to Postfix", strings.Join(sent, "\n"), `line="RCPT TO:<bob@c\.test>"$`)
	})

	t.Run("what Postfix lacks", func(t *testing.T) {
		t.Parallel()
		// 8-bit text declared BODY=8BITMIME to a server without 8BITMIME: converted to
		// quoted-printable (RFC 6152 §3), which Python's email package decodes back to the
		// same octets. An 8-bit header cannot be converted: it comes back (554 5.6.3); so does
		// a UTF-8 header to a server without SMTPUTF8 (553 5.6.7, RFC 6531 §3.2). Postfix
		// never sees either.
		t.Run("converted", func(t *testing.T) {
			tok := token(t)
			d := ehlod(t, w.A.Submission, false)
			d.authPlain(aliceA, alicePW)
			d.cmd("MAIL FROM:<"+aliceA+"> BODY=8BITMIME", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<bob@c.test>", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			d.write("From: <alice@a.test>\r\nSubject: " + tok + "\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
				"Gr\xc3\xbc\xc3\x9fe, = und .\r\n..\r\n.\r\n")
			id := queueID(t, d.expect(queuedRE))
			d.cmd("QUIT", `221 2\.0\.0 Bye`)
			msg := pf.waitMessage(tok)
			mustMatch(t, "the message at Postfix", msg, `(?m)^Content-Transfer-Encoding: quoted-printable$`)
			mustMatch(t, "the message at Postfix", msg, `(?m)^Gr=C3=BC=C3=9Fe, =3D und \.$`)
			py := `import sys, email; m = email.message_from_binary_file(sys.stdin.buffer); ` +
				`sys.stdout.buffer.write(m.get_payload(decode=True)); print(m.defects, m.get_content_charset())`
			out, errOut, code := runTool(t, 30*time.Second, msg, pythonExe(t), "-c", py)
			if want := "Gr\xc3\xbc\xc3\x9fe, = und .\n.\n[] utf-8\n"; code != 0 || out != want {
				t.Errorf("Python decodes %q (exit %d, %s), want %q", out, code, errOut, want)
			}
			waitLog(t, w.A, 5*time.Second, 1, "remote: 8-bit message converted to 7 bits", "msgid="+id, "remote=mx.c.test")
		})
		t.Run("converted multipart", func(t *testing.T) {
			// Text and HTML alternatives and an 8-bit attachment: each part decodes, in
			// Python's email package, to the octets it had.
			tok := token(t)
			parts := []struct{ typ, body string }{
				{"text/plain; charset=utf-8", "Gr\xc3\xbc\xc3\x9fe\r\n" + strings.Repeat("\xc3\xa4", 60)},
				{"text/html; charset=utf-8", "<p>caf\xc3\xa9 = \xe2\x82\xac</p>"},
				{"application/octet-stream", "\x80\xff\xfe binary-ish \x01"},
			}
			var b strings.Builder
			b.WriteString("From: <alice@a.test>\r\nSubject: " + tok + "\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\nThis is MIME.\r\n")
			for _, p := range parts {
				b.WriteString("--=_b\r\nContent-Type: " + p.typ + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + p.body + "\r\n")
			}
			b.WriteString("--=_b--\r\n")
			d := ehlod(t, w.A.Submission, false)
			d.authPlain(aliceA, alicePW)
			d.cmd("MAIL FROM:<"+aliceA+"> BODY=8BITMIME", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<bob@c.test>", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			d.write(b.String() + ".\r\n")
			d.expect(queuedRE)
			d.cmd("QUIT", `221 2\.0\.0 Bye`)
			msg := pf.waitMessage(tok)
			py := `import sys, email
m = email.message_from_binary_file(sys.stdin.buffer)
assert not m.defects, m.defects
for p in m.walk():
    if p.is_multipart(): continue
    print(p.get_content_type(), p["Content-Transfer-Encoding"], p.get_payload(decode=True).hex())`
			out, errOut, code := runTool(t, 30*time.Second, msg, pythonExe(t), "-c", py)
			var want strings.Builder
			for i, p := range parts {
				cte := "quoted-printable"
				if i == 2 {
					cte = "base64"
				}
				typ, _, _ := strings.Cut(p.typ, ";")
				// Postfix's Maildir has LF line ends, which is what the text decodes to.
				want.WriteString(fmt.Sprintf("%s %s %x\n", typ, cte, strings.ReplaceAll(p.body, "\r\n", "\n")))
			}
			if code != 0 || out != want.String() {
				t.Errorf("Python reads (exit %d, %s):\n%s\nwant:\n%s", code, errOut, out, want.String())
			}
		})
		t.Run("converted large multipart", func(t *testing.T) {
			// 2 MiB of 8-bit text and 2 MiB of 8-bit octets, far beyond the converter's
			// 64 KiB buffer: Postfix gets valid 7-bit MIME (no octet above 127, no defect in
			// Python's email package), and each part decodes to the octets it had.
			tok := token(t)
			var text, bin strings.Builder
			for i := 0; text.Len() < 2<<20; i++ {
				fmt.Fprintf(&text, "Zeile %d: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, = und \t\r\n", i)
			}
			for i := 0; bin.Len() < 2<<20; i++ {
				for j := range 76 {
					bin.WriteByte(byte(0x80 + (i*31+j*7)%128))
				}
				bin.WriteString("\r\n")
			}
			msg := "From: <alice@a.test>\r\nSubject: " + tok + "\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n" +
				"--=_b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text.String() +
				"--=_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + bin.String() +
				"--=_b--\r\n"
			d := ehlod(t, w.A.Submission, false)
			d.authPlain(aliceA, alicePW)
			d.cmd("MAIL FROM:<"+aliceA+"> BODY=8BITMIME", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<bob@c.test>", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			d.write(msg + ".\r\n")
			id := queueID(t, d.expect(queuedRE))
			d.cmd("QUIT", `221 2\.0\.0 Bye`)
			got := pf.waitMessage(tok)
			py := `import sys, email, hashlib
raw = sys.stdin.buffer.read()
assert max(raw) < 128, "8-bit octets at Postfix"
m = email.message_from_bytes(raw)
assert not m.defects, m.defects
for p in m.walk():
    if p.is_multipart(): continue
    assert not p.defects, p.defects
    print(p.get_content_type(), p["Content-Transfer-Encoding"], hashlib.sha256(p.get_payload(decode=True)).hexdigest())`
			out, errOut, code := runTool(t, 60*time.Second, got, pythonExe(t), "-c", py)
			// The text's last line end belongs to the delimiter; Postfix's Maildir has LF line
			// ends, which is what quoted-printable text decodes to, while base64 keeps the CRLFs.
			wantText := strings.ReplaceAll(strings.TrimSuffix(text.String(), "\r\n"), "\r\n", "\n")
			want := fmt.Sprintf("text/plain quoted-printable %x\napplication/octet-stream base64 %x\n",
				sha256.Sum256([]byte(wantText)), sha256.Sum256([]byte(strings.TrimSuffix(bin.String(), "\r\n"))))
			if code != 0 || out != want {
				t.Errorf("Python reads (exit %d, %s):\n%s\nwant:\n%s", code, errOut, out, want)
			}
			waitLog(t, w.A, 5*time.Second, 1, "remote: 8-bit message converted to 7 bits", "msgid="+id, "remote=mx.c.test")
		})
		for _, tc := range []struct {
			name, mailParams, subject, status, diag string
		}{
			{"8-bit header", "BODY=8BITMIME", "Gr\xc3\xbc\xc3\x9fe", `5\.6\.3`,
				`X-Tern; Conversion required but not supported: 8-bit header, and host mx\.c\.test does not offer 8BITMIME`},
			{"SMTPUTF8", "SMTPUTF8", "caf\xc3\xa9", `5\.6\.7`,
				`X-Tern; non-ASCII addresses not permitted: host mx\.c\.test does not offer SMTPUTF8`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok := token(t)
				d := ehlod(t, w.A.Submission, false)
				d.authPlain(aliceA, alicePW)
				d.cmd("MAIL FROM:<"+aliceA+"> "+tc.mailParams, `250 2\.1\.0 Ok`)
				d.cmd("RCPT TO:<bob@c.test>", `250 2\.1\.5 Ok`)
				d.cmd("DATA", `354 .*`)
				d.write("From: <alice@a.test>\r\nSubject: " + tc.subject + " " + tok + "\r\n\r\nHello.\r\n.\r\n")
				id := queueID(t, d.expect(queuedRE))
				d.cmd("QUIT", `221 2\.0\.0 Bye`)
				r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
				checkFields(t, tc.name+" recipient fields", r.Recipients[0], map[string]string{
					"Final-Recipient": `rfc822; bob@c\.test`,
					"Action":          "failed",
					"Status":          tc.status,
					"Remote-MTA":      "", // tern found it: mx.c.test said nothing
					"Diagnostic-Code": tc.diag,
				})
				waitLog(t, w.A, 5*time.Second, 1, "delivery failed", "msgid="+id, "attempt=1")
				var sent []string
				for _, l := range logLines(w.A, "remote: trace", "msgid="+id, "dir=sent") {
					sent = append(sent, l.Text)
				}
				mustNotMatch(t, "A's commands to Postfix", strings.Join(sent, "\n"), `MAIL FROM`)
			})
		}
	})

	t.Run("TLS policy", func(t *testing.T) {
		t.Parallel()
		// A3 requires a verified certificate for b.test, which B's self-signed one is not:
		// deferred with 4.7.5 and never sent in the clear. c.test needs only encryption,
		// which Postfix's STARTTLS gives.
		a3 := startTern(t, ternOpts{
			Config: "[delivery]\ntls_policy = { \"b.test\" = \"verify\", \"c.test\" = \"encrypt\" }\n",
			ServeArgs: []string{"--domain", "a.test", "--resolver", w.DNS.Addr, "--remote-port", w.Port,
				"--retry-schedule", "1h"},
			NoStart: true,
		})
		a3.AddUser(aliceA, alicePW)
		a3.Start()
		a3w := &mxWorld{A: a3}
		tokB, tokC := token(t), token(t)
		idB := a3w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tokB})
		a3w.submit(t, outMsg{Rcpts: []string{"bob@c.test"}, Tok: tokC})
		pf.waitMessage(tokC)
		waitLog(t, a3, 10*time.Second, 1, "delivery deferred", "msgid="+idB)
		mustMatch(t, "queue list", queueEntry(a3.QueueList(), idB),
			`^ +\(454 4\.7\.5 TLS negotiation with mx\.b\.test failed: .*certificate signed by unknown authority; TLS \(verify\) required by policy\)\n +bob@b\.test\n`)
		// One connection, given up after the handshake: no retry in the clear.
		if l := logLines(a3, "remote: connection", "msgid="+idB); len(l) != 1 {
			t.Errorf("%d connections for %s, want 1", len(l), idB)
		}
		if got := messagesWith(w.B, bobB, tokB); len(got) != 0 {
			t.Fatalf("B got the message without a verified certificate")
		}
	})

	t.Run("relayhost", func(t *testing.T) {
		t.Parallel()
		// A2 sends everything to B as its smarthost, with AUTH (relay_user): B's Received
		// says ESMTPSA. No MX lookup at all: A2's resolver is the harness's dead one.
		a2 := startTern(t, ternOpts{
			Config: "[delivery]\nrelay_user = \"" + relayB + "\"\nrelay_password = \"" + relayPW + "\"\n",
			ServeArgs: []string{"--domain", "a.test", "--relayhost", net.JoinHostPort(bHostIP, w.Port),
				"--retry-schedule", "1s"},
			NoStart: true,
		})
		a2.AddUser(aliceA, alicePW)
		a2.Start()
		tok := token(t)
		a2w := &mxWorld{A: a2}
		id := a2w.submit(t, outMsg{Rcpts: []string{carolB}, Tok: tok})
		msg := w.B.WaitMessage(carolB, tok, 15*time.Second)
		mustMatch(t, "B's Received", headers(msg, "Received")[0], `^Received: from mx\.example\.test \(\[127\.0\.0\.\d+\]\)\n`+
			`\t\(using TLSv1\.3 .*\)\n\tby mx\.b\.test \(tern\) with ESMTPSA id [0-9A-F]+\n\tfor <carol@b\.test>; `)
		waitLog(t, a2, 5*time.Second, 1, "delivered", "msgid="+id, "relay="+bHostIP)
		waitLog(t, w.B, 5*time.Second, 1, "auth", "listener=smtp", "mech=SCRAM-SHA-256-PLUS", "user="+relayB)
	})

	t.Run("relayhost on the submissions port", func(t *testing.T) {
		t.Parallel()
		// A3 sends everything to B's implicit-TLS listener (465's kind, RFC 8314): TLS from
		// the first octet (relay_tls = "implicit"), then AUTH.
		a3 := startTern(t, ternOpts{
			Config:    "[delivery]\nrelay_tls = \"implicit\"\nrelay_user = \"" + relayB + "\"\nrelay_password = \"" + relayPW + "\"\n",
			ServeArgs: []string{"--domain", "a.test", "--relayhost", w.B.Submissions, "--retry-schedule", "1s"},
			NoStart:   true,
		})
		a3.AddUser(aliceA, alicePW)
		a3.Start()
		tok := token(t)
		id := (&mxWorld{A: a3}).submit(t, outMsg{Rcpts: []string{carolB}, Tok: tok})
		msg := w.B.WaitMessage(carolB, tok, 15*time.Second)
		mustMatch(t, "B's Received", headers(msg, "Received")[0], `^Received: from mx\.example\.test \(\[127\.0\.0\.\d+\]\)\n`+
			`\t\(using TLSv1\.3 .*\)\n\tby mx\.b\.test \(tern\) with ESMTPSA id [0-9A-F]+\n\tfor <carol@b\.test>; `)
		waitLog(t, a3, 5*time.Second, 1, "delivered", "msgid="+id)
		waitLog(t, w.B, 5*time.Second, 1, "auth", "listener=submissions", "user="+relayB)
	})
}

// suspended matches what an attempt says instead of "cannot connect" when it comes while the
// address is still marked dead (for half the shortest retry interval after a failure): on a
// loaded machine a refused connection can take long enough for the next attempt to fall in that
// time.
const suspended = `(delivery temporarily suspended: )?`

// TestRelayDeferred: B is down, so A's attempts fail with a 4xx and are retried on the
// schedule (1s, then 2s); B comes up and the next attempt delivers. Then B is killed (by PID)
// and the same happens again.
func TestRelayDeferred(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "1s,2s,4s"})
	tok := token(t)
	id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
	// Attempts 1 and 2 fail; the queue shows why.
	tries := waitLog(t, w.A, 10*time.Second, 2, "delivery deferred", "msgid="+id)
	list := w.A.QueueList()
	entry := queueEntry(list, id)
	mustMatch(t, "queue list", entry, `^`+id+` +\d+ .* alice@a\.test\n +\(451 4\.4\.1 `+suspended+`cannot connect to mx\.b\.test: mx\.b\.test\[127\.0\.0\.2\]:`+w.Port+`: .*connection refused\)\n +bob@b\.test$`)
	show, _, code := w.A.ternCmd("", []string{"queue", "show"}, id)
	if code != 0 {
		t.Fatalf("tern queue show %s: status %d", id, code)
	}
	mustMatch(t, "queue show", show, `^Status: +deferred until .* \(after 2 attempts\)$`)
	w.B.Start()
	del := waitLog(t, w.A, 10*time.Second, 1, "delivered", "msgid="+id)[0]
	w.B.WaitMessage(bobB, tok, 5*time.Second)
	mustMatch(t, "A's log", del.Text, ` attempt=3 `)
	// The schedule as the queue kept it: each attempt's delay (since the message arrived, on
	// the queue's clock) is at least the previous one's plus the schedule's wait. No upper
	// bound: how late a loaded machine runs an attempt is not the schedule's business.
	delays := []time.Duration{logDelay(t, tries[0]), logDelay(t, tries[1]), logDelay(t, del)}
	for i, wait := range []time.Duration{time.Second, 2 * time.Second} {
		// The delays are rounded to the millisecond.
		if gap := delays[i+1] - delays[i]; gap < wait-time.Millisecond {
			t.Errorf("attempt %d started %v after attempt %d, want at least the schedule's %v", i+2, gap, i+1, wait)
		}
	}
	if got := messagesWith(w.A, aliceA, tok); len(got) != 0 {
		t.Errorf("alice got a report for a message that was only delayed:\n%s", got[0])
	}

	// B crashes; the next message waits for it.
	w.B.Kill()
	tok2 := token(t)
	id2 := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok2})
	waitLog(t, w.A, 10*time.Second, 1, "delivery deferred", "msgid="+id2, "attempt=1")
	w.B.Start()
	w.B.WaitMessage(bobB, tok2, 10*time.Second)
	waitLog(t, w.A, 5*time.Second, 1, "delivered", "msgid="+id2, "attempt=2")
	w.A.WaitQueueEmpty(5 * time.Second)
}

// TestRelayDelayWarning: with delay_warning = 1s and B down, alice gets one report with
// Action: delayed (not one per attempt), and the message stays queued.
func TestRelayDelayWarning(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "300ms", AConfig: "[queue]\ndelay_warning = \"1s\"\n"})
	tok := token(t)
	id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok, RcptParams: "ORCPT=rfc822;bob@b.test"})
	// Wait for well past the warning: attempt 8 is about 2.1s after the message arrived.
	waitLog(t, w.A, 15*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=8")
	w.A.WaitMessage(aliceA, tok, 10*time.Second)
	syncLog(t, w.A)
	if n := len(logLines(w.A, "delivery report queued", "msgid="+id)); n != 1 {
		t.Fatalf("%d reports queued, want exactly one delay warning", n)
	}
	reports := messagesWith(w.A, aliceA, tok)
	if len(reports) != 1 {
		t.Fatalf("alice got %d reports, want exactly one delay warning", len(reports))
	}
	r := parseDSN(t, reports[0], testHostname, aliceA)
	if r.Subject != "Delayed Mail (still being retried)" {
		t.Errorf("Subject %q", r.Subject)
	}
	checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
		"Final-Recipient":    `rfc822; bob@b\.test`,
		"Original-Recipient": `rfc822;bob@b\.test`,
		"Action":             "delayed",
		"Status":             `4\.4\.1`,
		"Diagnostic-Code":    `X-Tern; ` + suspended + `cannot connect to mx\.b\.test`,
		"Remote-MTA":         "",
		"Will-Retry-Until":   `.+`,
	})
	// A delay report returns only the headers.
	if r.ReturnedType != "text/rfc822-headers" || !strings.Contains(r.Returned, "Subject: "+tok) || strings.Contains(r.Returned, "END-"+tok) {
		t.Errorf("returned %s:\n%s", r.ReturnedType, r.Returned)
	}
	if !strings.Contains(w.A.QueueList(), id) {
		t.Fatalf("%s left the queue after a delay warning", id)
	}
	if n := len(logLines(w.A, "delivery report queued", "msgid="+id, "action=delayed")); n != 1 {
		t.Errorf("%d delay reports queued, want 1", n)
	}
	// The warning was given once for good: not again after a restart. The attempts go on
	// counting from where they were.
	w.A.Stop()
	before := len(logLines(w.A, "delivery deferred", "msgid="+id))
	w.A.Start()
	lines := waitLog(t, w.A, 15*time.Second, before+2, "delivery deferred", "msgid="+id)
	if l := lines[before].Text; !strings.Contains(l, fmt.Sprintf(" attempt=%d ", before+1)) {
		t.Errorf("the first attempt after the restart is not number %d: %s", before+1, l)
	}
	syncLog(t, w.A)
	if n := len(logLines(w.A, "delivery report queued", "msgid="+id)); n != 1 {
		t.Errorf("%d reports queued after a restart, want still the one delay warning", n)
	}
	if n := len(messagesWith(w.A, aliceA, tok)); n != 1 {
		t.Errorf("after a restart alice has %d reports, want still the one delay warning", n)
	}
}

// TestRelayExpired: with max_age = 1s and B down, the message fails once it is older than
// that: alice gets a failure report saying the delivery time expired (5.4.7), with the last
// temporary error as the diagnostic. A report that cannot be delivered either (from the null
// sender, with bounce_max_age = 1s) is dropped when it expires, without a report of its own.
func TestRelayExpired(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "300ms",
		AConfig: "[queue]\nmax_age = \"1s\"\nbounce_max_age = \"1s\"\n"})
	tok := token(t)
	id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
	r := parseDSN(t, w.A.WaitMessage(aliceA, tok, 15*time.Second), testHostname, aliceA)
	checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
		"Final-Recipient": `rfc822; bob@b\.test`,
		"Action":          "failed",
		"Status":          `5\.4\.7`,
		"Diagnostic-Code": `X-Tern; gave up: not delivered before the message expired; last attempt: ` + suspended + `cannot connect to mx\.b\.test`,
		"Remote-MTA":      "",
	})
	failed := waitLog(t, w.A, 5*time.Second, 1, "delivery failed", "msgid="+id, "expired=true")[0]
	gone(t, w.A, id, 5*time.Second)
	// It failed at the first attempt past max_age: the one before was deferred.
	n, _ := strconv.Atoi(mustMatch(t, "the failure", failed.Text, ` attempt=(\d+) `)[1])
	if age := logDelay(t, failed); age < time.Second {
		t.Errorf("the message failed as expired %v after it arrived, before max_age (1s)", age)
	}
	if n < 2 || len(logLines(w.A, "delivery deferred", "msgid="+id, fmt.Sprintf("attempt=%d", n-1))) != 1 {
		t.Errorf("the message expired at attempt %d, not at the first one past max_age", n)
	}

	tok2 := token(t)
	id2 := w.submit(t, outMsg{From: "<>", Rcpts: []string{bobB}, Tok: tok2})
	waitLog(t, w.A, 15*time.Second, 1, "delivery failed", "msgid="+id2, "expired=true")
	waitLog(t, w.A, 5*time.Second, 1, "no report for a message from the null sender", "msgid="+id2, "action=failed")
	gone(t, w.A, id2, 5*time.Second)
	if got := messagesWith(w.A, aliceA, tok2); len(got) != 0 {
		t.Errorf("a report on an expired message from <> reached alice:\n%s", got[0])
	}
}

// TestRelayETRN: a message waits for B with an hour until its next attempt; B comes up and a
// client's ETRN b.test (RFC 1985) sends it on at once. ETRN is for authenticated clients, a few
// a minute, and forgets only the addresses of that domain found down (not d.test's).
func TestRelayETRN(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "1h"})
	tok := token(t)
	id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
	waitLog(t, w.A, 10*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=1")
	idD := w.submit(t, outMsg{Rcpts: []string{"nobody@d.test"}, Tok: token(t)})
	waitLog(t, w.A, 10*time.Second, 1, "delivery deferred", "msgid="+idD, "attempt=1")

	// Anyone on port 25 may not.
	anon := ehlod(t, w.A.SMTP, false)
	anon.cmd("ETRN b.test", `459 4\.7\.1 Node b\.test not allowed: ETRN requires authentication`)
	anon.cmd("QUIT", `221 2\.0\.0 Bye`)
	waitLog(t, w.A, 5*time.Second, 1, "etrn refused", "node=b.test", "code=459")

	d := ehlod(t, w.A.Submission, false)
	d.authPlain(aliceA, alicePW)
	// B is still down: the attempt ETRN starts fails again.
	d.cmd("ETRN b.test", `252 2\.0\.0 OK, pending messages for node b\.test started`)
	waitLog(t, w.A, 10*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=2")
	w.B.Start()
	start := time.Now()
	d.cmd("ETRN b.test", `252 2\.0\.0 OK, pending messages for node b\.test started`)
	w.B.WaitMessage(bobB, tok, 10*time.Second)
	waitLog(t, w.A, 5*time.Second, 1, "delivered", "msgid="+id, "attempt=3")
	t.Logf("delivered %v after ETRN", time.Since(start).Round(time.Millisecond))
	d.cmd("ETRN b.test", `251 2\.0\.0 OK, no messages waiting for node b\.test`)
	d.cmd("ETRN b.test", `458 4\.7\.0 Unable to queue messages for node b\.test: too many ETRN requests, try again later`)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)

	// Each ETRN b.test forgot the one address of b.test found down, never d.test's.
	forgot := logLines(w.A, "flush: servers found down are tried again")
	if len(forgot) == 0 {
		t.Fatal("no ETRN forgot the address of b.test found down")
	}
	for _, l := range forgot {
		if !strings.Contains(l.Text, "domain=b.test ") || !strings.Contains(l.Text, "addresses=1") {
			t.Errorf("ETRN b.test forgot more than b.test's address: %s", l.Text)
		}
	}
	if n := len(logLines(w.A, "delivery deferred", "msgid="+idD)); n != 1 {
		t.Errorf("the message for d.test was tried %d times, want once (ETRN b.test is not for it)", n)
	}
}

// TestRelayCrash: A relays 30 messages to B through a slow link; A is killed with SIGKILL
// (by PID) while deliveries are under way, and restarted. Every message A acknowledged ends
// up in B's Maildir, whole; a message is delivered twice only if it was in flight at the kill
// (at most one per delivery running to b.test).
func TestRelayCrash(t *testing.T) {
	t.Parallel()
	// At most queue.destination_concurrency deliveries to b.test run at once: 16, half the
	// default 32 workers.
	const n, workers = 30, 16
	// B listens on 127.0.0.1; mx.b.test:P will be a slow link to it. Until the link is up,
	// A's attempts fail and wait for the next one, so that the messages go out together
	// whatever the time it takes to submit them.
	w := startWorld(t, worldOpts{BListen: "127.0.0.1:0", Schedule: "500ms"})

	d := ehlod(t, w.A.Submission, false)
	d.authPlain(aliceA, alicePW)
	ids := map[string]string{} // token -> A's queue id
	var toks []string
	for i := 0; i < n; i++ {
		tok := token(t)
		ids[tok] = d.transaction(outMsg{Rcpts: []string{bobB}, Tok: tok, Pad: 800}) // 60 KiB
		toks = append(toks, tok)
	}
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	// The link: 16 KiB per 25ms from A to B, so each message takes 100ms or more.
	startSlowProxy(t, net.JoinHostPort(bHostIP, w.Port), w.B.SMTP, 16<<10, 25*time.Millisecond)

	bNew := w.B.MaildirNew(bobB)
	waitFor(t, 30*time.Second, "B's first deliveries", func() bool { return dirCount(bNew) >= 3 })
	w.A.Kill()
	atKill := dirCount(bNew)
	t.Logf("A killed (pid %d) with %d of %d messages in B's Maildir", w.A.PID(), atKill, n)
	if atKill >= n {
		t.Fatalf("every message was delivered before the kill: the test proves nothing")
	}
	w.A.Start()
	waitLog(t, w.A, 5*time.Second, 1, "queue: recovered messages")
	w.A.WaitQueueEmpty(60 * time.Second)
	w.B.WaitQueueEmpty(30 * time.Second)

	got := map[string]int{}
	for _, m := range w.B.Maildir(bobB) {
		tok := strings.TrimPrefix(header(m, "Subject"), "Subject: ")
		if !strings.HasSuffix(m, "\nEND-"+tok+"\n") || len(m) < 800*75 {
			t.Errorf("a message arrived cut (%d octets, Subject %q)", len(m), tok)
		}
		got[tok]++
	}
	var lost []string
	dups := 0
	for _, tok := range toks {
		switch c := got[tok]; {
		case c == 0:
			lost = append(lost, tok+" (queued as "+ids[tok]+")")
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("%d messages in B's Maildir, %d duplicate(s)", len(w.B.Maildir(bobB)), dups)
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged message(s) lost after kill -9 and restart: %s", len(lost), strings.Join(lost, ", "))
	}
	if len(got) != n {
		t.Errorf("B has %d different messages, want %d", len(got), n)
	}
	if dups > workers {
		t.Errorf("%d duplicates, but at most %d deliveries were in flight", dups, workers)
	}
	if msgs := w.A.Maildir(aliceA); len(msgs) != 0 {
		t.Errorf("alice got %d report(s):\n%s", len(msgs), msgs[0])
	}
	if strings.Contains(w.A.Log(), "panic") {
		t.Errorf("A's log mentions a panic")
	}
}
