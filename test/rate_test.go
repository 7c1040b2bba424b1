package test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rateConfig sets every inbound rate limit low, with a window of 10s (one event forgotten
// every 5s), so that a burst is refused however slow the machine and recovers within seconds;
// only 127.0.0.1 is exempt, so that the clients at 127.0.0.9-11 are limited.
const rateConfig = `[rate]
client_window = "10s"
client_connections = 2
client_messages = 2
client_recipients = 3
exempt = ["127.0.0.1"]
account_window = "10s"
account_messages = 2
account_recipients = 100
`

// TestRateLimits drives each inbound rate limit past its count through the binary: new
// connections (421 4.7.0 before the greeting), messages and recipients per client address
// (450 4.7.1), messages per account on the submission port from the exempt 127.0.0.1 (450
// 4.7.1: account limits apply to every address); then tern limits show lists the four
// counters full, and each limit lets its client in again once an event is forgotten.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: rateConfig})
	tn.AddUser("bob@example.test", "pw")

	// Connections from 127.0.0.9: two, then 421 before the greeting.
	for range 2 {
		d := dialFrom(t, "127.0.0.9", tn.SMTP)
		d.expect(`220 mx\.example\.test ESMTP tern`)
		d.cmd("QUIT", `221 .*`)
	}
	d := dialFrom(t, "127.0.0.9", tn.SMTP)
	d.expect(`421 4\.7\.0 Too many connections from 127\.0\.0\.9: 2 connections per 10s, try again later`)
	d.expectClosed()

	// Messages from 127.0.0.10: two MAIL commands, then 450.
	msgs := dialFrom(t, "127.0.0.10", tn.SMTP)
	msgs.expect(`220 .*`)
	msgs.ehlo("ten.example.com")
	for range 2 {
		msgs.cmd("MAIL FROM:<a@ten.example.com>", `250 2\.1\.0 Ok`)
		msgs.cmd("RSET", `250 .*`)
	}
	msgs.cmd("MAIL FROM:<a@ten.example.com>", `450 4\.7\.1 Message rate limit exceeded for 127\.0\.0\.10: 2 messages per 10s`)

	// Recipients from 127.0.0.11: three RCPT commands (an unknown user counts too), then 450;
	// the message goes to those accepted.
	rcpts := dialFrom(t, "127.0.0.11", tn.SMTP)
	rcpts.expect(`220 .*`)
	rcpts.ehlo("eleven.example.com")
	rcpts.cmd("MAIL FROM:<a@eleven.example.com>", `250 .*`)
	rcpts.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 .*`)
	rcpts.cmd("RCPT TO:<nobody@example.test>", `550 5\.1\.1 .*`)
	rcpts.cmd("RCPT TO:<postmaster@example.test>", `250 2\.1\.5 .*`)
	rcpts.cmd("RCPT TO:<bob@example.test>", `450 4\.7\.1 Recipient rate limit exceeded for 127\.0\.0\.11: 3 recipients per 10s`)
	rcpts.cmd("DATA", `354 .*`)
	rcpts.write("Subject: two of four\r\n\r\nhi\r\n.\r\n")
	rcpts.expect(queuedRE)

	// The account bob, on submission from the exempt 127.0.0.1: two messages, then 450.
	sub := dialFrom(t, "127.0.0.1", tn.Submission)
	sub.expect(`220 .*`)
	sub.ehlo("laptop.example.com")
	sub.authPlain("bob@example.test", "pw")
	for range 2 {
		sub.cmd("MAIL FROM:<bob@example.test>", `250 .*`)
		sub.cmd("RSET", `250 .*`)
	}
	sub.cmd("MAIL FROM:<bob@example.test>", `450 4\.7\.1 Message rate limit exceeded for bob@example\.test: 2 messages per 10s`)

	// tern limits show: the four full counters first.
	out, errOut, code := tn.ternCmd("", []string{"limits", "show"})
	if code != 0 {
		t.Fatalf("tern limits show: exit %d: %s", code, errOut)
	}
	t.Logf("tern limits show:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	mustMatch(t, "header", lines[0], `^LIMIT +WHO +USED +PER +RESETS IN$`)
	full := strings.Join(lines[1:5], "\n")
	for _, re := range []string{
		`(?m)^connections +127\.0\.0\.9 +2/2 +10s +\d+s$`,
		`(?m)^messages +127\.0\.0\.10 +2/2 +10s +\d+s$`,
		`(?m)^recipients +127\.0\.0\.11 +3/3 +10s +\d+s$`,
		`(?m)^account-messages +bob@example\.test +2/2 +10s +\d+s$`,
	} {
		mustMatch(t, "the four full counters", full, re)
	}
	mustNotMatch(t, "tern limits show", out, `127\.0\.0\.1 `) // exempt: not counted
	out, errOut, code = tn.ternCmd("", []string{"limits", "show", "--json"})
	var js []struct {
		Limit, Who, Window string
		ResetsAt           string `json:"resets_at"`
		Used, Max          int
	}
	if err := json.Unmarshal([]byte(out), &js); code != 0 || err != nil || len(js) < 4 {
		t.Fatalf("tern limits show --json: exit %d, %v: %s%s", code, err, out, errOut)
	}

	// Each recovers once an event is forgotten (within 5s): a new connection is greeted, MAIL
	// and RCPT are accepted again in the sessions that were refused.
	waitFor(t, 15*time.Second, "a connection from 127.0.0.9 greeted", func() bool {
		d := dialFrom(t, "127.0.0.9", tn.SMTP)
		return strings.HasPrefix(d.expect(`(220|421) .*`), "220")
	})
	retry := func(d *dialog, line, ok string) {
		t.Helper()
		waitFor(t, 15*time.Second, line+" accepted", func() bool {
			d.send(line)
			return regexp.MustCompile(ok).MatchString(d.expect(`(250|450) .*`))
		})
	}
	retry(msgs, "MAIL FROM:<a@ten.example.com>", `^250 2\.1\.0`)
	rcpts.cmd("MAIL FROM:<a@eleven.example.com>", `250 .*`)
	retry(rcpts, "RCPT TO:<bob@example.test>", `^250 2\.1\.5`)
	retry(sub, "MAIL FROM:<bob@example.test>", `^250 2\.1\.0`)
	sub.cmd("RCPT TO:<bob@example.test>", `250 .*`)
	sub.cmd("DATA", `354 .*`)
	sub.write("Subject: after the window\r\n\r\nhi\r\n.\r\n")
	sub.expect(queuedRE)
	tn.WaitMaildir("bob@example.test", 2, 10*time.Second)

	syncLog(t, tn)
	for _, re := range []string{
		`msg="rate limit exceeded" limit=connections key=127\.0\.0\.9 remote=127\.0\.0\.9 user="" max=2 window=10s`,
		`msg="connection refused" .*remote=127\.0\.0\.9 .*code=421 reason="Too many connections from 127\.0\.0\.9: 2 connections per 10s, try again later"`,
		`msg="rate limit exceeded" limit=messages key=127\.0\.0\.10 `,
		`msg="rate limit exceeded" limit=recipients key=127\.0\.0\.11 `,
		`msg="rate limit exceeded" limit=account-messages key=bob@example\.test remote=127\.0\.0\.1 user=bob@example\.test max=2 window=10s`,
	} {
		mustMatch(t, "log", tn.Log(), re)
	}
}

// TestRateOutbound: with rate.outbound_domains = ["b.test=1"] per 10s, A sends alice's first
// message to b.test at once and holds the second in its queue (logged once, no attempt and no
// failure recorded) until the limit lets it go, a few seconds later; both reach B.
func TestRateOutbound(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{AConfig: "[rate]\noutbound_window = \"10s\"\noutbound_domains = [\"b.test=1\"]\n"})
	tok1, tok2 := token(t), token(t)
	id1 := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok1})
	id2 := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok2})
	waitLog(t, w.A, 10*time.Second, 1, "outbound rate limit: mail to the domain waits in the queue", "domain=b.test", "max=1", "window=10s")
	gone(t, w.A, id1, 10*time.Second)
	gone(t, w.A, id2, 20*time.Second)
	w.B.WaitMessage(bobB, tok1, 10*time.Second)
	w.B.WaitMessage(bobB, tok2, 10*time.Second)
	if n := len(logLines(w.A, "outbound rate limit: mail to the domain waits in the queue")); n != 1 {
		t.Errorf("the wait was logged %d times, want once", n)
	}
	// The wait was no attempt: each message was delivered by its first.
	for _, id := range []string{id1, id2} {
		mustMatch(t, "A's log", w.A.Log(), `msg=delivered .*msgid=`+id+` .*attempt=1\b`)
	}
	waitLog(t, w.A, 5*time.Second, 1, "outbound rate limit: mail to the domain goes again", "domain=b.test")
}
