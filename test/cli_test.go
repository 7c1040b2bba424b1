package test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIUsers drives `tern user add|list|passwd|del` and checks what the server makes of the
// accounts, and that no password is ever stored in the clear.
func TestCLIUsers(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	const pwAlice, pwAlice2, pwCarol = "Plain-Alice-Secret-4711", "Plain-Alice-Changed-0815", "Plain-Carol-Secret-2342"

	user := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return tn.ternCmd(stdin, []string{"user", args[0]}, args[1:]...)
	}
	expect := func(what string, out, errOut string, code, wantCode int, wantOut, wantErr string) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("%s: exit status %d, want %d\nstdout: %s\nstderr: %s", what, code, wantCode, out, errOut)
		}
		if wantOut != "" {
			mustMatch(t, what+" stdout", out, wantOut)
		}
		if wantErr != "" {
			mustMatch(t, what+" stderr", errOut, wantErr)
		}
	}

	o, e, c := user(pwAlice+"\n", "add", "--password-stdin", "alice@example.test")
	// user add says which mechanisms it stored secrets for: the defaults, here.
	const defaultSecrets = ` \(secrets for PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS\)$`
	expect("user add", o, e, c, 0, `^added alice@example\.test`+defaultSecrets, "")
	o, e, c = user(pwCarol+"\n", "add", "--password-stdin", "Carol@Example.TEST")
	expect("user add (mixed case)", o, e, c, 0, `^added carol@example\.test`+defaultSecrets, "")
	o, e, c = user("again\n", "add", "--password-stdin", "alice@example.test")
	expect("user add (exists)", o, e, c, 1, "", `^tern: alice@example\.test already has an account \(tern user passwd alice@example\.test changes its password\)$`)
	o, e, c = user("\n", "add", "--password-stdin", "empty@example.test")
	expect("user add (empty password)", o, e, c, 1, "", `^tern: the password is empty: an account needs one$`)
	o, e, c = user("pw\n", "add", "--password-stdin", "no-at-sign")
	expect("user add (bad address)", o, e, c, 1, "", `^tern: not a mail address: "no-at-sign": missing '@'$`)
	// Without the flag the password is read from a terminal; a pipe is refused, not read.
	o, e, c = user(pwAlice+"\n", "add", "dave@example.test")
	expect("user add (stdin not a terminal)", o, e, c, 2, "", `^tern user add: standard input is not a terminal; use --password-stdin; see 'tern user add --help'$`)

	// user list: each account with the mechanisms it can log in with; with more configured, the
	// missing secrets and what to run.
	const mechs = "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS"
	o, e, c = user("", "list")
	expect("user list", o, e, c, 0, "", "")
	if o != "alice@example.test  "+mechs+"\ncarol@example.test  "+mechs+"\n" {
		t.Fatalf("user list:\n%s", o)
	}
	o, e, c = user("", "list", "--auth-mechanisms", "all")
	expect("user list --auth-mechanisms all", o, e, c, 0,
		`^alice@example\.test  `+mechs+`  \(no secret for CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM: tern user passwd alice@example\.test\)$`, "")
	o, e, c = user("", "show", "Alice@example.test", "--auth-mechanisms", "PLAIN,CRAM-MD5")
	expect("user show", o, e, c, 0, "", "")
	if want := "account:     alice@example.test\nsecrets for: " + mechs + "\n" +
		"missing:     CRAM-MD5 (configured, but the password was set before: tern user passwd alice@example.test stores them)\n" +
		"mailbox:     " + filepath.Join(tn.Data, "mail", "example.test", "alice") + "\n"; o != want {
		t.Fatalf("user show:\n%s\nwant:\n%s", o, want)
	}
	o, e, c = user("", "show", "nobody@example.test")
	expect("user show (unknown)", o, e, c, 1, "", `^tern: there is no account nobody@example\.test \(tern user list shows them\)$`)

	o, e, c = user(pwAlice2+"\n", "passwd", "--password-stdin", "alice@example.test")
	expect("user passwd", o, e, c, 0, `^password changed for alice@example\.test`+defaultSecrets, "")
	o, e, c = user("pw\n", "passwd", "--password-stdin", "nobody@example.test")
	expect("user passwd (unknown)", o, e, c, 1, "", `^tern: there is no account nobody@example\.test \(tern user list shows them\)$`)

	// The running server sees the accounts at once.
	d := ehlod(t, tn.SMTP, false)
	d.cmd("MAIL FROM:<x@host.example.com>", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<alice@example.test>", `250 2\.1\.5 Ok`)
	d.cmd("RCPT TO:<CAROL@example.test>", `250 2\.1\.5 Ok`)
	d.cmd("RCPT TO:<dave@example.test>", `550 5\.1\.1 <dave@example\.test>: Recipient address rejected: User unknown`)
	d.cmd("RSET", `250 2\.0\.0 Ok`)
	// ... and their passwords: the changed one works at once, the old one no longer does.
	sub := ehlod(t, tn.Submission, false)
	sub.cmd("AUTH PLAIN "+plainIR("alice@example.test", pwAlice), `535 5\.7\.8 Error: authentication failed`)
	sub.authPlain("alice@example.test", pwAlice2)
	sub.cmd("QUIT", `221 2\.0\.0 Bye`)
	ehlod(t, tn.Submission, false).authPlain("Carol@Example.TEST", pwCarol)

	o, e, c = user("", "del", "alice@example.test")
	expect("user del", o, e, c, 0, `^deleted alice@example\.test \(its mailbox, if any, stays in .*\)$`, "")
	o, e, c = user("", "del", "alice@example.test")
	expect("user del (again)", o, e, c, 1, "", `^tern: there is no account alice@example\.test \(tern user list shows them\)$`)
	o, _, _ = user("", "list")
	if o != "carol@example.test  "+mechs+"\n" {
		t.Fatalf("user list after del:\n%s", o)
	}
	d.cmd("MAIL FROM:<x@host.example.com>", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<alice@example.test>", `550 5\.1\.1 <alice@example\.test>: Recipient address rejected: User unknown`)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	// A deleted account can no longer log in.
	ehlod(t, tn.Submission, false).cmd("AUTH PLAIN "+plainIR("alice@example.test", pwAlice2), `535 5\.7\.8 Error: authentication failed`)

	// No password in the clear, in the database or its WAL and shared-memory files.
	files, err := filepath.Glob(filepath.Join(tn.Data, "accounts.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no accounts.db in %s: %v", tn.Data, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{pwAlice, pwAlice2, pwCarol} {
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s contains the plaintext password %q", filepath.Base(f), pw)
			}
		}
	}
}

// TestCLIQueue checks `tern queue list`: empty, then a message held by a failing delivery (the
// mailbox path is blocked by a file) with the reason shown, kept across a restart, and
// delivered by a retry once unblocked.
func TestCLIQueue(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[queue]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n"})
	tn.AddUser("bob@example.test", "pw")
	if q := tn.QueueList(); q != "Mail queue is empty\n" {
		t.Fatalf("queue list:\n%s", q)
	}

	// A regular file where bob's mailbox directory would go: Maildir creation fails, which is a
	// temporary error, so the message stays queued.
	blocker := filepath.Join(tn.Data, "mail", "example.test", "bob")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := ehlod(t, tn.SMTP, false)
	id := queueID(t, d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: held\r\n\r\nwait for it\r\n"))
	d.cmd("QUIT", `221 2\.0\.0 Bye`)

	var q string
	waitFor(t, 10*time.Second, "the failed attempt to show in the queue", func() bool {
		q = tn.QueueList()
		return strings.Contains(q, "(")
	})
	mustMatch(t, "queue list", q, `^-Queue ID- +--Size-- ----Arrival Time---- -Sender/Recipient-------$`)
	mustMatch(t, "queue list", q, `^`+id+` +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d +alice@host\.example\.com$`)
	mustMatch(t, "queue list", q, `^ +\(451 4\.3\.0 local delivery failed\b.*\)\n +bob@example\.test$`)
	mustMatch(t, "queue list", q, `^-- 1 Kbytes in 1 Request\.$`)

	// The held message survives a restart, with its state.
	tn.Restart()
	if q2 := tn.QueueList(); !strings.Contains(q2, id) || !strings.Contains(q2, "bob@example.test") {
		t.Fatalf("after the restart the queue lost the held message:\n%s", q2)
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	msg := tn.WaitMaildir("bob@example.test", 1, 15*time.Second)[0]
	mustMatch(t, "delivered", header(msg, "Received"), ` id `+id+`\b`)
	tn.WaitQueueEmpty(10 * time.Second)
}

// TestRestartKeepsCertificate checks that the self-signed certificate made on first start is
// the one served after a restart (clients that pinned it keep working).
func TestRestartKeepsCertificate(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	pemBytes, err := os.ReadFile(filepath.Join(tn.Data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("cert.pem holds no certificate:\n%s", pemBytes)
	}
	served := func() []byte {
		d := greeted(t, tn.Submissions, true)
		implicit := d.peerCert()
		d2 := ehlod(t, tn.SMTP, false)
		d2.startTLS()
		if !bytes.Equal(d2.peerCert().Raw, implicit.Raw) {
			t.Fatal("STARTTLS and implicit TLS serve different certificates")
		}
		return implicit.Raw
	}
	before := served()
	if !bytes.Equal(before, blk.Bytes) {
		t.Fatal("the served certificate is not the one in <data>/tls/cert.pem")
	}
	if cn := mustParseCN(t, before); cn != testHostname {
		t.Fatalf("certificate CN %q, want %q", cn, testHostname)
	}
	tn.Restart()
	after := served()
	if !bytes.Equal(before, after) {
		t.Fatal("a new certificate was served after the restart")
	}
	pemAfter, err := os.ReadFile(filepath.Join(tn.Data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pemAfter, pemBytes) {
		t.Fatal("cert.pem was rewritten by the restart")
	}
}

func mustParseCN(t *testing.T, der []byte) string {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Subject.CommonName
}

// dialQuiet connects without failing the test.
func dialQuiet(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}

// TestShutdown checks the stop signal: idle clients are told 421 4.3.2 at once, a client in
// the middle of a message gets to finish it (and the message survives the restart), and the
// process exits 0 as soon as no client is left, without waiting for its 10s grace period.
// "At once" is an order of events: the idle clients get their 421 while the busy one is still
// in the middle of its message, which the test finishes only after that.
func TestShutdown(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")

	idle := ehlod(t, tn.SMTP, false)
	idleTLS := ehlod(t, tn.Submissions, true)
	busy := ehlod(t, tn.Submission, false)
	busy.authPlain("bob@example.test", "pw") // submission requires AUTH
	busy.cmd("MAIL FROM:<bob@example.test>", `250 2\.1\.0 Ok`)
	busy.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
	busy.cmd("DATA", `354 .*`)
	busy.write("Subject: in flight during shutdown\r\n\r\nfirst half\r\n")

	tn.Signal(syscall.SIGTERM)
	idle.expect(`421 4\.3\.2 mx\.example\.test Service shutting down, closing connection`)
	idle.expectClosed()
	idleTLS.expect(`421 4\.3\.2 mx\.example\.test Service shutting down, closing connection`) // under TLS
	idleTLS.expectClosed()
	// The listeners closed before the idle sessions were told: nothing new is accepted.
	if c, err := dialQuiet(tn.SMTP); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after SIGTERM")
	}
	// The busy session finishes its message, then is told the same.
	busy.write("second half\r\n.\r\n")
	id := queueID(t, busy.expect(queuedRE))
	busy.expect(`421 4\.3\.2 mx\.example\.test Service shutting down, closing connection`)
	busy.expectClosed()

	code, ok := tn.Wait(15 * time.Second)
	if !ok {
		t.Fatalf("tern still running 15s after SIGTERM with no client left")
	}
	if code != 0 {
		t.Fatalf("tern exited with status %d after SIGTERM", code)
	}
	// Had it waited for the grace period to end, it would have said so.
	mustNotMatch(t, "tern log", tn.Log(), `msg="shutdown grace period over`)
	// The idle sessions were ended by the shutdown, and the log says so, not "timeout".
	mustNotMatch(t, "tern log", tn.Log(), `msg=timeout`)
	mustMatch(t, "tern log", tn.Log(), `msg="shutting down" conn=\d+ remote=127\.0\.0\.1 listener=smtp phase=idle`)
	// The acknowledged message is delivered, now or after the restart.
	tn.Start()
	msg := tn.WaitMessage("bob@example.test", "in flight during shutdown", 10*time.Second)
	mustMatch(t, "delivered", header(msg, "Received"), ` id `+id+`\b`)
	if body(msg) != "first half\nsecond half\n" {
		t.Fatalf("body %q", body(msg))
	}
	tn.Stop()
}

// TestDataDirLock checks that a second server refuses a data directory that is in use.
func TestDataDirLock(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "serve", "--data", tn.Data,
		"--smtp", "127.0.0.1:0", "--submission", "", "--submissions", "", "--domain", testDomain)
	if code != 1 {
		t.Fatalf("second tern serve on the same data directory: exit status %d, want 1", code)
	}
	mustMatch(t, "stderr", errOut, `^tern: data directory \S+ is in use by another tern serve$`)
	if strings.Contains(out, "listening") {
		t.Fatalf("the second server listened:\n%s", out)
	}
	// The first one is unharmed.
	greeted(t, tn.SMTP, false).cmd("QUIT", `221 2\.0\.0 Bye`)
}

// TestDataPermissions checks that what tern writes into its data directory (accounts, private
// key, queue, mailboxes) is private to its user; only the certificate is public.
func TestDataPermissions(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")
	d := ehlod(t, tn.SMTP, false)
	d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: private\r\n\r\nmail is personal data\r\n")
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	tn.WaitMaildir("bob@example.test", 1, 10*time.Second)
	n := 0
	err := filepath.WalkDir(tn.Data, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tn.Data, p)
		n++
		switch {
		case rel == filepath.Join("tls", "cert.pem"):
		case fi.Mode().Perm()&0o077 != 0:
			t.Errorf("%s has mode %v: readable or writable by others", rel, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d entries under the data directory", n)
	}
}
