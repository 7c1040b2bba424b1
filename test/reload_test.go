package test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadConfig changes message_size in the file of a running server: after SIGHUP, and
// again after tern reload, a new session sees the new SIZE in EHLO while a session opened
// before keeps its own and goes on; a broken file is refused (logged with its line, tern reload
// prints it and exits 1) and the limit in force stays; a setting that needs a restart is
// logged as such.
func TestReloadConfig(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[limits]\nmessage_size = 2000\n"})
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(tn.configPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	size := func(want string) *dialog {
		t.Helper()
		d := greeted(t, tn.SMTP, false)
		if kw := d.ehlo("client.example.com"); !slices.Contains(kw, want) {
			t.Fatalf("EHLO does not announce %s: %q", want, kw)
		}
		return d
	}
	// Without --config: the server reads the file it was started with.
	reload := func() (string, int) {
		t.Helper()
		stdout, stderr, code := runTool(t, 30*time.Second, "", ternBin, "reload", "--data", tn.Data)
		return stdout + stderr, code
	}
	before := size("SIZE 2000")

	write("[limits]\nmessage_size = 3000\n")
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 10*time.Second, 1, "configuration reloaded: new sessions take the new settings")
	size("SIZE 3000").cmd("QUIT", `221 .*`)
	// The session opened before keeps its limit, and goes on.
	before.cmd("MAIL FROM:<alice@host.example.com> SIZE=2500", `552 5\.3\.4 .*`)
	before.cmd("NOOP", `250 .*`)

	write("[limits]\nmessage_size = 4000\n[queue]\nworkers = 3\n")
	if out, code := reload(); code != 0 {
		t.Fatalf("tern reload exited %d:\n%s", code, out)
	}
	size("SIZE 4000").cmd("QUIT", `221 .*`)
	waitLog(t, tn, 10*time.Second, 1, "queue.workers changed: takes effect after a restart")

	write("[limits]\n\nmessage_size = \"10M\"\n")
	out, code := reload()
	if code != 1 {
		t.Fatalf("tern reload of a broken file exited %d, want 1:\n%s", code, out)
	}
	mustMatch(t, "tern reload's output", out, `line 3: limits\.message_size: incompatible types`)
	waitLog(t, tn, 10*time.Second, 1, "reload refused: the configuration has problems; the one in force stays")
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 10*time.Second, 2, "reload refused: the configuration has problems; the one in force stays")
	size("SIZE 4000").cmd("QUIT", `221 .*`)
	before.cmd("QUIT", `221 .*`)
}

// TestReloadLiveSettings changes what used to need a restart in the file of a running server:
// a local domain added is taken on SIGHUP (an RCPT to it from another server is accepted, and
// the message delivered to its mailbox); an AUTH mechanism removed and a failed-AUTH limit
// lowered are taken on tern reload (new sessions' EHLO no longer lists it, while a session
// opened before still does; the failure before the reload counts against the new limit).
func TestReloadLiveSettings(t *testing.T) {
	t.Parallel()
	conf := func(domains, mechs string, failures int) string {
		return fmt.Sprintf("domains = [%s]\n[auth]\nmechanisms = [%s]\nmax_failures = %d\n", domains, mechs, failures)
	}
	tn := startTern(t, ternOpts{Config: conf(`"example.test"`, `"SCRAM-SHA-256", "PLAIN"`, 5), DomainsInConfig: true})
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(tn.configPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tn.AddUser("bob@other.test", "pw-bob")

	d := greeted(t, tn.SMTP, false)
	d.ehlo("client.example.org")
	d.cmd("MAIL FROM:<alice@remote.example>", `250 .*`)
	d.cmd("RCPT TO:<bob@other.test>", `554 5\.7\.1 .*`)
	d.cmd("QUIT", `221 .*`)

	write(conf(`"example.test", "other.test"`, `"SCRAM-SHA-256", "PLAIN"`, 5))
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 10*time.Second, 1, "configuration reloaded: new sessions take the new settings")
	d = greeted(t, tn.SMTP, false)
	d.ehlo("client.example.org")
	token := "reload-domain-token"
	d.sendMessage("alice@remote.example", "bob@other.test", "Subject: "+token+"\r\n\r\n"+token+"\r\n")
	d.cmd("QUIT", `221 .*`)
	tn.WaitMessage("bob@other.test", token, 30*time.Second)

	before := greeted(t, tn.Submission, false)
	if kw := before.ehlo("client.example.org"); !slices.Contains(kw, "AUTH SCRAM-SHA-256 PLAIN") {
		t.Fatalf("EHLO before the reload: %q, want AUTH SCRAM-SHA-256 PLAIN", kw)
	}
	before.cmd("AUTH PLAIN "+plainIR("bob@other.test", "wrong"), `535 .*`)
	write(conf(`"example.test", "other.test"`, `"PLAIN"`, 2))
	if out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "reload", "--data", tn.Data); code != 0 {
		t.Fatalf("tern reload exited %d:\n%s%s", code, out, errOut)
	}
	after := greeted(t, tn.Submission, false)
	if kw := after.ehlo("client.example.org"); !slices.Contains(kw, "AUTH PLAIN") {
		t.Errorf("EHLO after removing SCRAM-SHA-256: %q, want AUTH PLAIN alone", kw)
	}
	if kw := before.ehlo("client.example.org"); !slices.Contains(kw, "AUTH SCRAM-SHA-256 PLAIN") {
		t.Errorf("EHLO again in the session opened before the reload: %q, want its AUTH SCRAM-SHA-256 PLAIN", kw)
	}
	// The second failure from this client reaches the new limit of 2: blocked.
	after.cmd("AUTH PLAIN "+plainIR("bob@other.test", "wrong"), `535 .*`)
	waitLog(t, tn, 10*time.Second, 1, "auth block started", "kind=client")
	blocked := greeted(t, tn.Submission, false)
	blocked.ehlo("client.example.org")
	blocked.cmd("AUTH PLAIN "+plainIR("bob@other.test", "pw-bob"), `421 4\.7\.0 .*`)
	before.cmd("QUIT", `221 .*`)
}

// TestReloadScreenAndConnections lowers connections_per_ip and turns the pregreet test on in
// the file of a running server: after SIGHUP, the two connections opened before count against
// the new limit of 2 (a third is refused with 421, and served again once one ended), and a
// client that talks before the greeting is refused.
func TestReloadScreenAndConnections(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[limits]\nconnections_per_ip = 5\n"})
	d1 := ehlod(t, tn.SMTP, false)
	d2 := ehlod(t, tn.Submission, false)
	if err := os.WriteFile(tn.configPath, []byte("[limits]\nconnections_per_ip = 2\n[screen]\npregreet_wait = \"2s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 10*time.Second, 1, "configuration reloaded: new sessions take the new settings")
	d3 := dial(t, tn.SMTP)
	d3.expect(`421 4\.7\.0 Too many connections from 127\.0\.0\.1`)
	d3.expectClosed()
	d1.cmd("QUIT", `221 .*`)
	d1.expectClosed()
	// Once d1's slot is free (421 until then), a client that talks first is refused for it.
	waitFor(t, 5*time.Second, "a client talking before the greeting refused for it", func() bool {
		d := dial(t, tn.SMTP)
		d.write("EHLO early.example.test\r\n")
		lines, _ := d.reply()
		d.conn.Close()
		return len(lines) > 0 && strings.HasPrefix(lines[0], "554 5.5.1 ")
	})
	d2.cmd("QUIT", `221 .*`)
}
