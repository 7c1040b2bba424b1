package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// Local delivery over LMTP to a real Dovecot (scripts/dovecot-lmtp.sh): tern's [delivery]
// lmtp points at Dovecot's LMTP port, and what tern accepted is read back with doveadm fetch.
// An account tern has and Dovecot does not is refused by Dovecot (550 5.1.1 at RCPT): its
// sender gets a report, delivered to the sender's Dovecot INBOX through LMTP too.

// dovecotPeer is a private Dovecot LMTP server.
type dovecotPeer struct{ *testutil.Dovecot }

// startDovecotPeer runs scripts/dovecot-lmtp.sh for users (full addresses, separated by
// spaces) with LMTP on a free loopback port; cleanup stops Dovecot by its PID.
func startDovecotPeer(t *testing.T, users string) *dovecotPeer {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "scripts", "dovecot-lmtp.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return &dovecotPeer{testutil.StartDovecot(t, script, users)}
}

// fetch returns `doveadm fetch -u user text mailbox INBOX all`.
func (dv *dovecotPeer) fetch(t *testing.T, user string) string {
	t.Helper()
	out, errOut, code := runTool(t, 30*time.Second, "", dv.Doveadm, "-c", dv.Conf, "fetch", "-u", user, "text", "mailbox", "INBOX", "all")
	if code != 0 {
		t.Fatalf("doveadm fetch -u %s: status %d: %s", user, code, errOut)
	}
	return out
}

// waitFetch waits until user's INBOX, as doveadm fetch shows it, holds tok, and returns the
// message with it (the text after doveadm's "text:" line).
func (dv *dovecotPeer) waitFetch(t *testing.T, user, tok string) string {
	t.Helper()
	var msg string
	waitFor(t, 15*time.Second, fmt.Sprintf("a message with %s in %s's INBOX (doveadm fetch)", tok, user), func() bool {
		// doveadm separates messages with a form feed line.
		for _, m := range strings.Split(dv.fetch(t, user), "\f\n") {
			if strings.Contains(m, tok) {
				msg = strings.TrimPrefix(m, "text:\n")
				return true
			}
		}
		return false
	})
	return msg
}

func TestLMTPDovecot(t *testing.T) {
	t.Parallel()
	dv := startDovecotPeer(t, "alice@example.test bob@example.test")
	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[delivery]\nlmtp = %q\n", dv.Addr)})
	// carol has an account in tern, not in Dovecot.
	tn.AddUsers("pw", "alice@example.test", "bob@example.test", "carol@example.test")

	tok := token(t)
	d := ehlod(t, tn.Submission, false)
	d.authPlain("alice@example.test", "pw")
	d.cmd("MAIL FROM:<alice@example.test>", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
	d.cmd("RCPT TO:<carol@example.test>", `250 2\.1\.5 Ok`) // tern knows carol
	d.cmd("DATA", `354 .*`)
	d.write("From: alice@example.test\r\nTo: bob@example.test, carol@example.test\r\nSubject: " + tok +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Gr\xc3\xbc\xc3\x9fe \xc3\xbcber LMTP.\r\n..a line that starts with a dot\r\n.\r\n")
	id := queueID(t, d.expect(queuedRE))
	d.cmd("QUIT", `221 2\.0\.0 Bye`)

	// Bob's copy, as Dovecot shows it: tern's Received header, the body octet for octet.
	msg := dv.waitFetch(t, "bob@example.test", tok)
	mustMatch(t, "bob's message", msg, `^Return-Path: <alice@example\.test>$`)
	mustMatch(t, "bob's message", msg, `^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with ESMTPA id `+id+`; `)
	mustMatch(t, "bob's message", msg, "^Gr\xc3\xbc\xc3\x9fe \xc3\xbcber LMTP\\.\n\\.a line that starts with a dot$")
	waitLog(t, tn, 5*time.Second, 1, "delivered", "msgid="+id, "rcpt=bob@example.test", "attempt=1")

	// Carol: Dovecot's 550 at RCPT, mapped back to her alone, and a report to alice, who
	// reads it in her Dovecot INBOX.
	waitLog(t, tn, 10*time.Second, 1, "delivery failed", "msgid="+id, "rcpt=carol@example.test", "attempt=1")
	report := dv.waitFetch(t, "alice@example.test", tok)
	r := parseDSN(t, report, testHostname, "alice@example.test")
	if len(r.Recipients) != 1 {
		t.Fatalf("report on %d recipients, want carol alone: %v", len(r.Recipients), r.Recipients)
	}
	checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
		"Final-Recipient": `rfc822; carol@example\.test`,
		"Action":          "failed",
		"Status":          `5\.1\.1`,
		"Diagnostic-Code": `smtp; 550 5\.1\.1 <carol@example\.test> User doesn't exist.*`,
		"Remote-MTA":      "", // local delivery, though over LMTP
	})
	tn.WaitQueueEmpty(10 * time.Second)
	// Nothing went to tern's own Maildir: LMTP took all local mail.
	for _, u := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if msgs := tn.Maildir(u); len(msgs) != 0 {
			t.Errorf("%s has %d message(s) in tern's Maildir, want none with LMTP", u, len(msgs))
		}
	}
}
