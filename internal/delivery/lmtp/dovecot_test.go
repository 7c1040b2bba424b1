package lmtp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/testutil"
)

// dovecotScript is scripts/dovecot-lmtp.sh.
func dovecotScript(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "scripts", "dovecot-lmtp.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// workDir is a temporary directory for the script. As root, Dovecot never touches mail as
// uid 0: the script gives the mail to nobody, who must be able to reach the directory, and
// t.TempDir makes it and its parent 0700.
func workDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// The test: LMTP to a real Dovecot, one transaction for known users, an unknown one
// and one over quota; each reply is mapped back to its recipient, and what was delivered is
// readable by Dovecot (doveadm fetch). Then the same over the unix socket.
func TestDovecot(t *testing.T) {
	t.Parallel()
	dv := testutil.StartDovecot(t, dovecotScript(t), "alice@example.test bob@example.test carol@example.test=1K")
	msg := "From: Sender <sender@example.org>\r\n" +
		"To: alice@example.test\r\n" +
		"Subject: LMTP test\r\n" +
		"Message-ID: <lmtp-test-1@example.org>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Gr\xc3\xbc\xc3\x9fe aus tern.\r\n" +
		".a line that starts with a dot\r\n" +
		strings.Repeat("This line makes the message larger than carol's quota of 1K.\r\n", 20)
	env := &envelope.Envelope{
		ID:   "Q1",
		From: "sender@example.org",
		Body: envelope.Body8BitMIME,
		Rcpts: []envelope.Recipient{
			{Addr: "alice@example.test"},
			{Addr: "nobody@example.test"},
			{Addr: "Bob@example.test"}, // Dovecot's default auth_username_format lower-cases
			{Addr: "carol@example.test"},
		},
	}
	d := New(Options{Addr: dv.Addr, LocalName: "tern.example.test", Logger: testLogger(t),
		Timeouts: Timeouts{Connect: 10 * time.Second, Command: 30 * time.Second, Data: 30 * time.Second}})
	out := d.DeliverBatch(context.Background(), env, []int{0, 1, 2, 3}, &bytesBody{b: []byte(msg)})
	checkOutcomes(t, out, []want{
		{},
		{550, "5.1.1", true, "<nobody@example.test> User doesn't exist"},
		{},
		{552, "5.2.2", true, "Quota exceeded"}, // refused after DATA, for carol alone
	})

	for _, user := range []string{"alice@example.test", "bob@example.test"} {
		got := dv.Run(t, "fetch", "-u", user, "text", "mailbox", "INBOX", "all")
		for _, want := range []string{"Subject: LMTP test", "Message-ID: <lmtp-test-1@example.org>",
			"Return-Path: <sender@example.org>", "Gr\xc3\xbc\xc3\x9fe aus tern.", "\n.a line that starts with a dot"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s's INBOX lacks %q; doveadm fetch says:\n%s", user, want, got)
			}
		}
		// In tern's own layout, so a switch between Maildir and LMTP keeps the mailboxes.
		local, domain, _ := strings.Cut(user, "@")
		if _, err := os.Stat(filepath.Join(dv.Dir, "mail", domain, local, "Maildir", "new")); err != nil {
			t.Errorf("%s's Maildir: %v", user, err)
		}
	}
	if got := dv.Run(t, "search", "-u", "carol@example.test", "mailbox", "INBOX", "all"); got != "" {
		t.Errorf("carol, over quota, got mail: %q", got)
	}

	// The unix socket, as Dovecot is usually reached on one machine.
	d = New(Options{Addr: "unix:" + dv.Socket, LocalName: "tern.example.test", Logger: testLogger(t)})
	env.ID = "Q2"
	msg2 := strings.Replace(msg, "lmtp-test-1", "lmtp-test-2", 1)
	out = d.DeliverBatch(context.Background(), env, []int{0}, &bytesBody{b: []byte(msg2)})
	checkOutcomes(t, out, []want{{}})
	got := dv.Run(t, "fetch", "-u", "alice@example.test", "hdr.message-id", "mailbox", "INBOX", "all")
	if !strings.Contains(got, "<lmtp-test-1@example.org>") || !strings.Contains(got, "<lmtp-test-2@example.org>") {
		t.Errorf("alice's INBOX after the second delivery:\n%s", got)
	}
}

// The script's background mode, as shell tests use it: start is idempotent (a second start
// finds the same master), LMTP_PORT=0 serves the unix socket alone, and stop ends the master by
// its PID, twice without complaint.
func TestDovecotScript(t *testing.T) {
	t.Parallel()
	testutil.DovecotTool(t, "dovecot")
	testutil.DovecotTool(t, "doveadm")
	script := dovecotScript(t)
	dir := workDir(t)
	sh := func(args ...string) map[string]string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "LMTP_PORT=0", "LMTP_USERS=alice@example.test")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("dovecot-lmtp.sh %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		vars := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		return vars
	}
	first := sh("start", dir)
	pid, err := strconv.Atoi(first["DOVECOT_PID"])
	if err != nil {
		t.Fatalf("start printed %v", first)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped { // the test failed half-way: stop the master by its PID
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	if again := sh("start", dir); again["DOVECOT_PID"] != first["DOVECOT_PID"] {
		t.Errorf("second start: PID %s, want the running master's %d", again["DOVECOT_PID"], pid)
	}
	if _, ok := first["LMTP_ADDR"]; ok {
		t.Errorf("LMTP_PORT=0 still printed a TCP address: %v", first)
	}
	if env := sh("env", dir); env["DOVECOT_PID"] != first["DOVECOT_PID"] || env["LMTP_SOCKET"] != first["LMTP_SOCKET"] {
		t.Errorf("env printed %v, start %v", env, first)
	}

	d := New(Options{Addr: "unix:" + first["LMTP_SOCKET"], LocalName: "tern.example.test", Logger: testLogger(t)})
	env := &envelope.Envelope{ID: "Q3", From: "", Rcpts: []envelope.Recipient{{Addr: "alice@example.test"}, {Addr: "eve@example.test"}}}
	out := d.DeliverBatch(context.Background(), env, []int{0, 1}, &bytesBody{b: []byte("Subject: bounce-like, null sender\r\n\r\nhi\r\n")})
	checkOutcomes(t, out, []want{{}, {550, "5.1.1", true, "User doesn't exist"}})

	sh("stop", dir)
	stopped = true
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if _, rest, _ := strings.Cut(string(stat), ") "); !strings.HasPrefix(rest, "Z") {
			t.Errorf("PID %d still runs after stop: %s", pid, stat)
		}
	}
	sh("stop", dir)
}
