package testutil

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dovecot is a private Dovecot LMTP server that scripts/dovecot-lmtp.sh runs for one test.
type Dovecot struct {
	Dir     string // its work directory: config, sockets, log, mail
	Conf    string // dovecot.conf, for doveadm -c
	Addr    string // the LMTP listener, 127.0.0.1:port
	Socket  string // the LMTP unix socket
	Doveadm string // the doveadm program
}

// DovecotTool finds a Dovecot program in PATH or /usr/sbin, where Debian puts dovecot, and
// checks that Dovecot's lmtp service is installed; a missing one is a MissingPeer.
func DovecotTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		p = filepath.Join("/usr/sbin", name)
		if _, err := os.Stat(p); err != nil {
			MissingPeer(t, name+" not found: install dovecot-core and dovecot-lmtpd (scripts/test-deps.sh)")
		}
	}
	if !exists("/usr/lib/dovecot/lmtp") && !exists("/usr/libexec/dovecot/lmtp") {
		MissingPeer(t, "Dovecot's lmtp service not found: install dovecot-lmtpd (scripts/test-deps.sh)")
	}
	return p
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// StartDovecot runs `script run DIR` (scripts/dovecot-lmtp.sh) for users (LMTP_USERS there)
// with LMTP on a free loopback port, and waits for its greeting. The script execs Dovecot, so
// the process started here is the Dovecot master: cleanup stops it by its PID (TERM, then KILL
// after 10 s) and removes DIR, or keeps it and logs Dovecot's output when the test failed.
// env adds settings of the script ("LMTP_SIEVE_JUNK=1").
func StartDovecot(t testing.TB, script, users string, env ...string) *Dovecot {
	t.Helper()
	dv := &Dovecot{Doveadm: DovecotTool(t, "doveadm")}
	DovecotTool(t, "dovecot")
	// As root, Dovecot keeps the mail as nobody, who must reach the directory: not t.TempDir,
	// whose parent is private.
	dir, err := os.MkdirTemp("", "tern-test-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dv.Addr = ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(dv.Addr)
	dv.Dir, dv.Conf, dv.Socket = dir, filepath.Join(dir, "dovecot.conf"), filepath.Join(dir, "run", "lmtp")

	// The script's and Dovecot's output go to a file, which can be read while they run.
	outPath := filepath.Join(dir, "script.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close() }() // the child writes through its own descriptor
	cmd := exec.Command("bash", script, "run", dir)
	cmd.Env = append(append(os.Environ(), "LMTP_PORT="+port, "LMTP_USERS="+users), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // stopped by a signal below: its status says nothing
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // it may have exited already: exited tells
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("Dovecot (PID %d) ignored SIGTERM; killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill() // exited tells when it is gone
			<-exited
		}
		if t.Failed() {
			for _, f := range []string{"script.out", "dovecot.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, b)
			}
			t.Logf("keeping %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})

	for deadline := time.Now().Add(15 * time.Second); !greeted(dv.Addr); {
		select {
		case <-exited:
			b, _ := os.ReadFile(outPath)
			t.Fatalf("dovecot-lmtp.sh exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(outPath)
			t.Fatalf("Dovecot did not answer on %s\n%s", dv.Addr, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid, _ := os.ReadFile(filepath.Join(dir, "run", "master.pid"))
	if strings.TrimSpace(string(pid)) != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("Dovecot's master.pid is %q, want the PID started here (%d)", pid, cmd.Process.Pid)
	}
	return dv
}

// greeted reports whether an LMTP server at addr sends its 220.
func greeted(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }() // a probe: only the greeting counts
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220 ")
}

// Run runs doveadm with the server's config and returns its standard output.
func (dv *Dovecot) Run(t testing.TB, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(dv.Doveadm, append([]string{"-c", dv.Conf}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("doveadm %s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	return stdout.String()
}
