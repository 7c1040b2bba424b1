package test

import (
	"os"
	"slices"
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
