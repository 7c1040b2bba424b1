package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestSmtplibManyRecipients: Python's smtplib ignores LIMITS RCPTMAX and sends every RCPT its
// sendmail() is given. Past limits.recipients tern answers 452 4.5.3 without counting those
// as errors (limits.recipient_overshoot, as Postfix's smtpd_recipient_overshoot_limit), so
// smtplib sends the message to the 1,000 accepted and returns the 25 refused, which the client
// sends in a second transaction, as a real one would. All 1,025 are delivered.
func TestSmtplibManyRecipients(t *testing.T) {
	t.Parallel()
	pythonExe(t)
	// 1,025 recipients without 1,025 accounts (each costs an argon2id hash): postmaster@ every
	// local domain is always accepted (RFC 5321 §4.5.1) and, with no postmaster account,
	// delivered to the Maildir of postmaster at the first domain, one copy per recipient.
	const n = 1025
	rcpts := []string{"postmaster@" + testDomain}
	var args []string
	for i := 1; i < n; i++ {
		d := fmt.Sprintf("d%04d.example", i)
		args = append(args, "--domain", d)
		rcpts = append(rcpts, "postmaster@"+d)
	}
	tn := startTern(t, ternOpts{ServeArgs: args})
	tok := token(t)
	text := "From: alice@host.example.com\nSubject: " + tok + "\n\nto many\n"
	out, debug := smtplibRun(t, "plain", tn.SMTP,
		step("ehlo"),
		step("sendmail", "alice@host.example.com", rcpts, text),
		step("resend_refused", "alice@host.example.com", text),
		step("quit"))
	mustMatch(t, "smtplib", out, `^FEATURES .*\blimits\b`)
	mustMatch(t, "smtplib", out, `^SENDMAIL accepted=1000 refused=25 codes=\[452\]\nSENDMAIL accepted=25 refused=0 codes=\[\]$`)
	mustMatch(t, "smtplib", out, `^QUIT 221 2\.0\.0 Bye$`)
	mustMatch(t, "smtplib debug", debug, `reply: b'452 4\.5\.3 Too many recipients\\r\\n'`)
	mustNotMatch(t, "smtplib debug", debug, `reply: b'421`)

	// Every recipient got its copy: 1,025 files, each from this test.
	dir := tn.MaildirNew("postmaster@" + testDomain)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d copies delivered after 60s\nqueue:\n%s", len(ents), n, tn.QueueList())
		}
		time.Sleep(100 * time.Millisecond)
	}
	msgs := tn.Maildir("postmaster@" + testDomain)
	for _, m := range msgs {
		if !strings.Contains(m, "Subject: "+tok+"\n") {
			t.Fatalf("a stranger in the mailbox:\n%s", m)
		}
	}
	if len(msgs) != n {
		t.Fatalf("%d copies, want %d", len(msgs), n)
	}
	tn.WaitQueueEmpty(30 * time.Second)
}

// TestSlowClientsBinary: a client that sends a byte now and then, as slowloris does, is cut off
// with 421 once its command line has taken limits.idle_timeout, or its message
// limits.data_timeout, however steadily the bytes come. Each trickle would go on for far
// longer than the test waits for the 421.
func TestSlowClientsBinary(t *testing.T) {
	t.Parallel()
	// Seconds, not less: the commands before a trickle must not time out on a loaded machine.
	tn := startTern(t, ternOpts{Config: "[limits]\nidle_timeout = \"2s\"\ndata_timeout = \"3s\"\n"})
	tn.AddUser("bob@example.test", "pw")
	const every = 100 * time.Millisecond // well inside the idle timeout
	t.Run("command line", func(t *testing.T) {
		t.Parallel()
		d := greeted(t, tn.SMTP, false)
		testutil.Trickle(t, d.conn, "EHLO "+strings.Repeat("x", 400), every)
		d.expect(`421 4\.4\.2 mx\.example\.test Error: timeout exceeded`)
		d.expectClosed()
	})
	t.Run("DATA", func(t *testing.T) {
		t.Parallel()
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		testutil.Trickle(t, d.conn, strings.Repeat("slow\r\n", 100), every)
		d.expect(`421 4\.4\.2 mx\.example\.test Error: timeout exceeded`)
		d.expectClosed()
		tn.ExpectNoMail("bob@example.test", 0)
	})
}

// TestRecipientOvershootConfig: limits.recipient_overshoot = 0 makes every 452 past
// limits.recipients count as an error again.
func TestRecipientOvershootConfig(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[limits]\nrecipients = 100\nrecipient_overshoot = 0\nerrors = 3\n"})
	d := ehlod(t, tn.SMTP, false)
	var b strings.Builder
	b.WriteString("MAIL FROM:<alice@host.example.com>\r\n")
	for range 103 {
		b.WriteString("RCPT TO:<postmaster@" + testDomain + ">\r\n") // the limit counts repeats
	}
	d.write(b.String())
	d.expect(`250 2\.1\.0 Ok`)
	for range 100 {
		d.expect(`250 2\.1\.5 Ok`)
	}
	d.expect(`452 4\.5\.3 Too many recipients`)
	d.expect(`452 4\.5\.3 Too many recipients`)
	d.expect(`452 4\.5\.3 Too many recipients`)
	d.expect(`421 4\.7\.0 mx\.example\.test Error: too many errors`)
	d.expectClosed()
}
