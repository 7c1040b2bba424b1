package test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// postgresNodes starts one PostgreSQL and two tern nodes that share their account store
// through it, each with its own data directory and queue.
func postgresNodes(t *testing.T, more string) (pg *testutil.Postgres, a, b *Tern) {
	t.Helper()
	pg = testutil.StartPostgres(t)
	cfg := "[accounts]\nurl = \"" + pg.URL() + "\"\n" + more
	a = startTern(t, ternOpts{Config: cfg})
	b = startTern(t, ternOpts{Config: cfg})
	return pg, a, b
}

// authReply tries AUTH PLAIN on addr and returns the reply's first line.
func authReply(t *testing.T, addr, user, password string) string {
	t.Helper()
	d := ehlod(t, addr, false)
	d.send("AUTH PLAIN " + plainIR(user, password))
	lines, err := d.reply()
	if err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	d.send("QUIT")
	return lines[0]
}

// TestTwoNodesPostgres: an account added or a password changed through one node, an alias
// added through one, a DKIM key made through one, all work on the other at once.
func TestTwoNodesPostgres(t *testing.T) {
	t.Parallel()
	_, a, b := postgresNodes(t, "")

	a.AddUser("alice@example.test", "pw1")
	for _, n := range []*Tern{a, b} {
		d := ehlod(t, n.Submission, false)
		d.authPlain("alice@example.test", "pw1")
	}
	// A password changed through b: the old one fails on a, the new one works there.
	if out, errOut, code := b.ternCmd("pw2\n", []string{"user", "passwd"}, "--password-stdin", "alice@example.test"); code != 0 {
		t.Fatalf("tern user passwd: %d\n%s%s", code, out, errOut)
	}
	mustMatch(t, "old password on a", authReply(t, a.Submission, "alice@example.test", "pw1"), `^535 5\.7\.8 `)
	mustMatch(t, "new password on a", authReply(t, a.Submission, "alice@example.test", "pw2"), `^235 2\.7\.0 `)

	// An alias added through a is a recipient on b's MX.
	d := ehlod(t, b.SMTP, false)
	d.cmd("MAIL FROM:<x@remote.test>", `250 .*`)
	d.cmd("RCPT TO:<sales@example.test>", `550 5\.1\.1 .*`)
	a.aliasCmd("add", "sales@example.test", "alice@example.test")
	d.cmd("RCPT TO:<sales@example.test>", `250 .*`)
	d.cmd("QUIT", `221 .*`)

	// A DKIM key made through a is listed through b.
	if out, errOut, code := a.ternCmd("", []string{"dkim", "keygen"}, "example.test"); code != 0 {
		t.Fatalf("tern dkim keygen: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := b.ternCmd("", []string{"dkim", "list"})
	if code != 0 || !strings.Contains(out, "example.test") {
		t.Fatalf("tern dkim list on b: %d\n%s%s", code, out, errOut)
	}
}

// TestPostgresDown: with the account store's PostgreSQL stopped, AUTH answers 454 4.7.0 and
// RCPT to a local domain 451 4.3.0 (try again later), never 235, 250, 535 or 550, and the
// shared failed-AUTH limits' failure is logged once; both work again once it is back.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	pg, a, _ := postgresNodes(t, "")
	a.AddUser("alice@example.test", "pw")
	mustMatch(t, "AUTH while up", authReply(t, a.Submission, "alice@example.test", "pw"), `^235 `)

	pg.Stop()
	for _, pw := range []string{"pw", "wrong"} {
		mustMatch(t, "AUTH while down", authReply(t, a.Submission, "alice@example.test", pw), `^454 4\.7\.0 `)
	}
	d := ehlod(t, a.SMTP, false)
	d.cmd("MAIL FROM:<x@remote.test>", `250 .*`)
	for _, rcpt := range []string{"alice@example.test", "nobody@example.test"} {
		d.cmd("RCPT TO:<"+rcpt+">", `451 4\.3\.0 .*`)
	}
	d.cmd("QUIT", `221 .*`)
	// Every AUTH asked the shared failed-AUTH limits, in vain: said once.
	waitFor(t, 10*time.Second, "the log line", func() bool { return strings.Contains(a.Log(), `msg="shared auth limits unavailable`) })
	if n := strings.Count(a.Log(), `msg="shared auth limits unavailable`); n != 1 {
		t.Errorf("%d \"shared auth limits unavailable\" lines, want 1:\n%s", n, a.Log())
	}

	pg.Start()
	mustMatch(t, "AUTH once back", authReply(t, a.Submission, "alice@example.test", "pw"), `^235 `)
	d = ehlod(t, a.SMTP, false)
	d.cmd("MAIL FROM:<x@remote.test>", `250 .*`)
	d.cmd("RCPT TO:<alice@example.test>", `250 .*`)
	d.cmd("RCPT TO:<nobody@example.test>", `550 5\.1\.1 .*`)
	d.cmd("QUIT", `221 .*`)
}

// TestTwoNodesAccountLimit: the per-account message limit counts the messages sent through
// both nodes.
func TestTwoNodesAccountLimit(t *testing.T) {
	t.Parallel()
	_, a, b := postgresNodes(t, "[rate]\naccount_messages = 2\n")
	a.AddUser("alice@example.test", "pw")
	d := ehlod(t, a.Submission, false)
	d.authPlain("alice@example.test", "pw")
	for range 2 {
		d.cmd("MAIL FROM:<alice@example.test>", `250 .*`)
		d.cmd("RSET", `250 .*`)
	}
	d.cmd("QUIT", `221 .*`)
	d = ehlod(t, b.Submission, false)
	d.authPlain("alice@example.test", "pw")
	d.cmd("MAIL FROM:<alice@example.test>", `450 4\.7\.1 Message rate limit exceeded for alice@example\.test: 2 messages per hour`)
	d.cmd("QUIT", `221 .*`)
}

// TestTwoNodesAuthBlock: a client that fails AUTH max_failures times at node a is blocked at
// node b too (421 4.7.0 before the exchange, the right password included, logged as fail2ban
// matches it), while the account's owner logs in from another address at both nodes.
func TestTwoNodesAuthBlock(t *testing.T) {
	t.Parallel()
	_, a, b := postgresNodes(t, "[auth]\nmax_failures = 3\nblock_time = \"1h\"\n")
	a.AddUser("bob@example.test", "pw-bob")

	g := dialFrom(t, "127.0.0.9", a.Submission)
	g.expect(`220 .*`)
	g.ehlo("guesser.example.com")
	g.cmd("AUTH PLAIN "+plainIR("bob", "guess-1"), authFailedRE)
	g.cmd("AUTH PLAIN "+plainIR("BOB", "guess-2"), authFailedRE)
	g.send("AUTH PLAIN " + plainIR("bob@example.test", "guess-3"))
	g.expect(authFailedRE)
	g.expect(`421 4\.7\.0 Error: too many failed authentications, try again later`)
	g.expectClosed()
	mustMatch(t, "a's log", a.Log(), `level=WARN msg="auth block started" kind=client remote=127\.0\.0\.9 `)

	g = dialFrom(t, "127.0.0.9", b.Submission)
	g.expect(`220 .*`)
	g.ehlo("guesser.example.com")
	g.cmd("AUTH PLAIN "+plainIR("bob@example.test", "pw-bob"), `421 4\.7\.0 Error: too many failed authentications, try again later`)
	g.expectClosed()
	refused := regexp.MustCompile(`level=WARN msg="auth refused: client blocked" conn=\d+ remote=127\.0\.0\.9 `)
	waitFor(t, 10*time.Second, "b's log line for fail2ban", func() bool { return refused.MatchString(b.Log()) })

	for _, n := range []*Tern{b, a} {
		d := dialFrom(t, "127.0.0.1", n.Submission)
		d.expect(`220 .*`)
		d.ehlo("client.example.com")
		d.authPlain("bob@example.test", "pw-bob")
		d.cmd("QUIT", `221 .*`)
	}
}
