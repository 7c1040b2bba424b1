package test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// aliasCmd runs `tern alias ARGS...` on tn's data directory and fails the test unless it
// succeeds; it returns what the command printed.
func (tn *Tern) aliasCmd(args ...string) string {
	tn.t.Helper()
	out, errOut, code := tn.ternCmd("", []string{"alias", args[0]}, args[1:]...)
	if code != 0 {
		tn.t.Fatalf("tern alias %s: status %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestAliasSeedSession replays the seeds' session (smtp-auth-gen-auth-notes.txt) octet for
// octet with netcat, the whole session sent at once, on tern's defaults with oeey.com its
// domain: kenneth@oeey.com is an alias of the account kenneth.burgener@oeey.com, whose login is
// the seeds' bare "kenneth.burgener". RCPT before MAIL gets the seeds' 503; MAIL FROM:
// <kenneth@oeey.com>, with the seeds' space after the colon, is the user's own through the
// alias; RCPT TO the alias is accepted; the message is queued and lands in
// kenneth.burgener's Maildir; the empty line the seed typed after it gets the seeds' 500.
func TestAliasSeedSession(t *testing.T) {
	t.Parallel()
	nc := needNetcat(t)
	tn := startTern(t, ternOpts{Domain: "oeey.com"})
	tn.AddUser("kenneth.burgener@oeey.com", seedPassword)
	out := tn.aliasCmd("add", "kenneth@oeey.com", "kenneth.burgener@oeey.com", "--domain", "oeey.com")
	mustMatch(t, "alias add", out, `(?m)^alias kenneth@oeey\.com: kenneth\.burgener@oeey\.com\ndelivers to: kenneth\.burgener@oeey\.com\n\z`)

	lines := []string{"EHLO trogdor", "AUTH LOGIN", seedLoginUser, seedLoginPass,
		"RCPT TO: <kenneth@oeey.com>",
		"MAIL FROM: <kenneth@oeey.com>",
		"RCPT TO: <kenneth@oeey.com>",
		"DATA",
		"Subject: This is a test",
		"From: Kenneth <kenneth@oeey.com>",
		"To: Kenneth <kenneth@oeey.com>",
		"",
		"This is a test",
		".",
		"",
		"quit"}
	f, err := os.Open(writeFile(t, "session", strings.Join(lines, "\r\n")+"\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	host, port := splitAddr(t, tn.SMTP)
	got, _, code := runToolIn(t, 30*time.Second, f, nc, host, port)
	if code != 0 {
		t.Fatalf("nc exit status %d", code)
	}
	want := "220 mx.example.test ESMTP tern\r\n" + ehloReply(ehloKeywordsFor(false, defaultMechs)) +
		"334 VXNlcm5hbWU6\r\n" +
		"334 UGFzc3dvcmQ6\r\n" +
		authOK + "\r\n" +
		"503 5.5.1 Error: need MAIL command\r\n" +
		"250 2.1.0 Ok\r\n" +
		"250 2.1.5 Ok\r\n" +
		"354 End data with <CR><LF>.<CR><LF>\r\n" +
		"250 2.0.0 Ok: queued as QUEUEID\r\n" +
		"500 5.5.2 Error: bad syntax\r\n" +
		"221 2.0.0 Bye\r\n"
	id := sameOctets(t, "nc output", got, want)
	msg := tn.WaitMaildir("kenneth.burgener@oeey.com", 1, 10*time.Second)[0]
	mustMatch(t, "delivered message", msg, `\AReturn-Path: <kenneth@oeey\.com>\r?\nDelivered-To: kenneth\.burgener@oeey\.com\r?\n`)
	mustMatch(t, "delivered message", msg, `by mx\.example\.test \(tern\) with ESMTPA id `+id+`\r?\n\tfor <kenneth@oeey\.com>;`)
	mustMatch(t, "delivered message", msg, `(?m)^Subject: This is a test\r?\n(?s:.*)\r?\n\r?\nThis is a test\r?\n\z`)
	tn.WaitQueueEmpty(10 * time.Second)
	checkLogClean(t, tn, passwordForms(seedUser, seedPassword)...)
}

// TestAliasForms delivers through every form of alias, through the real binary: an alias to
// an account, a list with a nested alias and an external target (the duplicate delivered
// once, the external one queued for remote delivery), an alias that keeps a copy and forwards,
// subaddresses, a domain alias and a catch-all; loops, unknown users and an alias deeper than
// the limit are refused at RCPT with 550 5.1.1; a mistyped target of a list fails at delivery,
// to be reported, instead of vanishing.
func TestAliasForms(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{ServeArgs: []string{"--domain", "example.org", "--domain", "other.test"},
		Config: "[addresses]\nalias_depth = 3\n"})
	tn.AddUsers("pw", "alice@example.test", "bob@example.test", "carol@other.test")
	for _, a := range [][]string{
		{"info@example.test", "alice@example.test"},
		{"team@example.test", "alice@example.test", "bob@example.test", "list@example.test", "bbo@example.test"}, // a typo
		{"list@example.test", "bob@example.test", "friend@remote.example"},
		{"bob@example.test", "bob@example.test", "bob@remote.example"},
		{"loop1@example.test", "loop2@example.test"},
		{"loop2@example.test", "loop1@example.test"},
		{"deep1@example.test", "deep2@example.test"},
		{"deep2@example.test", "deep3@example.test"},
		{"deep3@example.test", "deep4@example.test"},
		{"deep4@example.test", "alice@example.test"},
		{"@example.org", "@example.test"},
		{"@other.test", "carol@other.test"},
	} {
		tn.aliasCmd(append([]string{"add"}, a...)...)
	}
	list := tn.aliasCmd("list", "example.org")
	if list != "@example.org  (domain alias) @example.test\n" {
		t.Errorf("tern alias list example.org = %q", list)
	}
	mustMatch(t, "alias list", tn.aliasCmd("list"), `(?m)^@other\.test +\(catch-all\) carol@other\.test$`)

	d := ehlod(t, tn.SMTP, false)
	tok := token(t)
	d.cmd("MAIL FROM:<sender@remote.example>", `250 2\.1\.0 Ok`)
	for _, rc := range []struct{ addr, reply string }{
		{"info@example.test", `250 2\.1\.5 Ok`},
		{"team@example.test", `250 2\.1\.5 Ok`},
		{"alice+news@example.test", `250 2\.1\.5 Ok`},
		{"Team+x@Example.ORG", `250 2\.1\.5 Ok`},
		{"anyone@other.test", `250 2\.1\.5 Ok`},
		{"deep3@example.test", `250 2\.1\.5 Ok`},
		{"deep1@example.test", `550 5\.1\.1 <deep1@example\.test>: Recipient address rejected: User unknown`},
		{"loop1@example.test", `550 5\.1\.1 <loop1@example\.test>: Recipient address rejected: User unknown`},
		{"nobody@example.test", `550 5\.1\.1 <nobody@example\.test>: Recipient address rejected: User unknown`},
		{"nobody@example.org", `550 5\.1\.1 <nobody@example\.org>: Recipient address rejected: User unknown`},
	} {
		d.cmd("RCPT TO:<"+rc.addr+">", rc.reply)
	}
	d.cmd("DATA", `354 .*`)
	d.write("Subject: " + tok + "\r\n\r\nto every form\r\n.\r\n")
	id := queueID(t, d.expect(queuedRE))
	d.cmd("QUIT", `221 .*`)

	// alice: info, team, alice+news, team+x@example.org (via the domain alias), deep3: once.
	// bob: team, list, team+x: once, and bob's own alias keeps the copy.
	for _, who := range []string{"alice@example.test", "bob@example.test", "carol@other.test"} {
		msgs := tn.WaitMaildir(who, 1, 10*time.Second)
		mustMatch(t, who, msgs[0], `(?m)^Subject: `+tok+`\r?$`)
	}
	// The external targets wait for remote delivery (the tests' resolver answers nothing).
	var entry string
	waitFor(t, 10*time.Second, "the external targets to be held for remote delivery", func() bool {
		entry = queueEntry(tn.QueueList(), id)
		return strings.Contains(entry, "(4")
	})
	for _, ext := range []string{"friend@remote.example", "bob@remote.example"} {
		if n := strings.Count(entry, ext); n != 1 {
			t.Errorf("%s is in the queue entry %d times:\n%s", ext, n, entry)
		}
	}
	// The mistyped target is not dropped in silence: delivery refuses it, and the sender gets a
	// report (held for remote delivery like the forwards).
	waitFor(t, 10*time.Second, "the mistyped target to fail", func() bool {
		return len(logLines(tn, "delivery failed", "rcpt=bbo@example.test")) > 0
	})
	tn.aliasCmd("del", "team@example.test")
	tn.aliasCmd("del", "bob@example.test", "bob@remote.example")
	for _, who := range []string{"alice@example.test", "bob@example.test", "carol@other.test"} {
		if n := len(tn.Maildir(who)); n != 1 {
			t.Errorf("%s has %d messages, want 1 (duplicates after expansion are delivered once)", who, n)
		}
	}
	out, errOut, code := tn.ternCmd("", []string{"alias", "del"}, "team@example.test")
	if code == 0 || !regexp.MustCompile(`no such alias`).MatchString(errOut) {
		t.Errorf("deleting a deleted alias: status %d, %q %q", code, out, errOut)
	}
}

// TestAliasSenders: an authenticated user may send as the aliases that deliver to it (and
// their subaddresses), not as another user's, nor through a catch-all.
func TestAliasSenders(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{ServeArgs: []string{"--domain", "other.test"}})
	tn.AddUsers("pw", "alice@example.test", "bob@example.test")
	tn.aliasCmd("add", "sales@example.test", "alice@example.test", "bob@example.test")
	tn.aliasCmd("add", "ali@example.test", "alice@example.test")
	tn.aliasCmd("add", "@other.test", "alice@example.test")
	d := ehlod(t, tn.Submission, false)
	d.authPlain("alice@example.test", "pw")
	for _, s := range []struct{ from, reply string }{
		{"ali@example.test", `250 2\.1\.0 Ok`},
		{"ali+tag@example.test", `250 2\.1\.0 Ok`},
		{"sales@example.test", `250 2\.1\.0 Ok`},
		{"bob@example.test", `553 5\.7\.1 <bob@example\.test>: Sender address rejected: not owned by user alice@example\.test`},
		{"anyone@other.test", `553 5\.7\.1 <anyone@other\.test>: Sender address rejected: not owned by user alice@example\.test`},
	} {
		d.cmd("MAIL FROM:<"+s.from+">", s.reply)
		d.cmd("RSET", `250 .*`)
	}
}

// TestAliasBounceToAliasSender: alice sends as her alias al@a.test to a domain with a null MX;
// the bounce A makes goes to al@a.test, which A's delivery expands to alice's mailbox.
func TestAliasBounceToAliasSender(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{})
	w.A.aliasCmd("add", "al@a.test", aliceA, "--domain", "a.test")
	tok := token(t)
	w.submit(t, outMsg{From: "al@a.test", Rcpts: []string{"x@null.test"}, Tok: tok})
	bounce := w.A.WaitMessage(aliceA, tok, 20*time.Second)
	mustMatch(t, "bounce", bounce, `\AReturn-Path: <>\r?\nDelivered-To: alice@a\.test\r?\n`)
	mustMatch(t, "bounce", bounce, `(?mi)^Final-Recipient: rfc822; ?x@null\.test\r?$`)
	w.A.WaitQueueEmpty(10 * time.Second)
}

// TestAliasCLI: what tern alias answers to mistakes, with status 1 and one line each.
func TestAliasCLI(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{NoStart: true})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "x@example.test", "@example.org"}, "tern: bad alias: x@example.test is an address; only a domain (@example.org) can have a domain target (@example.org)\n"},
		{[]string{"add", "@example.org", "@example.test", "bob@example.test"}, "tern: bad alias: @example.org: a domain alias has one target, a domain (a catch-all has addresses)\n"},
		{[]string{"add", "a b@example.test", "bob@example.test"}, "tern: not a mail address: \"a b@example.test\": local part contains ' '\n"},
		{[]string{"del", "nobody@example.test"}, "tern: nobody@example.test: no such alias or target (tern alias list shows them)\n"},
	} {
		out, errOut, code := tn.ternCmd("", []string{"alias", tc.args[0]}, tc.args[1:]...)
		if code != 1 || errOut != tc.want || out != "" {
			t.Errorf("tern alias %s: status %d, stdout %q, stderr %q; want %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}
