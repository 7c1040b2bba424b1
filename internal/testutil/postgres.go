package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Postgres is a private PostgreSQL server that one test runs, on a free loopback port, with
// trust authentication for the superuser "tern".
type Postgres struct {
	Dir  string // its data directory, also where its unix socket goes
	Addr string // 127.0.0.1:port

	t    testing.TB
	bin  string              // the directory of initdb and postgres
	cred *syscall.Credential // the postgres user's, when the test runs as root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited

	logMu sync.Mutex
	log   strings.Builder // what the server wrote
}

// postgresBin finds the directory of initdb and postgres: PATH, or Debian's
// /usr/lib/postgresql/VERSION/bin; a missing one is a MissingPeer.
func postgresBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p)
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		return filepath.Dir(m[len(m)-1])
	}
	MissingPeer(t, "PostgreSQL's initdb not found: install postgresql (scripts/test-deps.sh)")
	return ""
}

// StartPostgres makes a database cluster in a new directory (initdb) and starts PostgreSQL on
// it. As root, both run as the postgres user (PostgreSQL refuses root), in a directory that user
// owns. Cleanup stops the server by its PID and removes the directory.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg := &Postgres{t: t, bin: postgresBin(t)}
	// Not t.TempDir: its parent is private to root, and postgres must reach the directory.
	dir, err := os.MkdirTemp("", "tern-test-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.Dir = dir
	t.Cleanup(func() {
		pg.Stop()
		if t.Failed() {
			t.Logf("postgres log:\n%s", pg.Log())
		}
		_ = os.RemoveAll(dir) // best effort: a temporary directory
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			MissingPeer(t, "no postgres user: install postgresql (scripts/test-deps.sh)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	initdb := pg.command("initdb", "-D", data, "-U", "tern", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.Addr = ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	pg.Start()
	return pg
}

// URL is the connection URL of the server's default database, as the superuser.
func (pg *Postgres) URL() string {
	return "postgres://tern@" + pg.Addr + "/postgres?sslmode=disable"
}

func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.Dir
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

// Start starts the server (again, after Stop) and waits until it accepts connections.
func (pg *Postgres) Start() {
	t := pg.t
	t.Helper()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.cmd != nil {
		t.Fatal("postgres: already running")
	}
	host, port, _ := net.SplitHostPort(pg.Addr)
	// fsync off: a test database need not survive a crash of the machine.
	cmd := pg.command("postgres", "-D", filepath.Join(pg.Dir, "data"), "-k", pg.Dir, "-h", host, "-p", port,
		"-c", "fsync=off", "-c", "max_connections=50")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	pg.cmd, pg.done = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func(done chan struct{}) {
		sc := bufio.NewScanner(stderr)
		signaled := false
		for sc.Scan() {
			pg.logLine(sc.Text())
			if !signaled && strings.Contains(sc.Text(), "ready to accept connections") {
				close(ready)
				signaled = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // drain what the scanner could not take
		_ = cmd.Wait()                     // the exit status is in the log
		close(done)
	}(pg.done)
	select {
	case <-ready:
	case <-pg.done:
		t.Fatalf("postgres exited at start:\n%s", pg.Log())
	case <-time.After(time.Minute):
		t.Fatalf("postgres did not start within a minute:\n%s", pg.Log())
	}
}

// Stop stops the server by its PID (SIGINT: PostgreSQL's fast shutdown, which ends the
// sessions) and waits until it has exited. Stopping a stopped server does nothing.
func (pg *Postgres) Stop() {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.cmd == nil {
		return
	}
	_ = pg.cmd.Process.Signal(os.Interrupt) // an exited process is what Stop wants
	select {
	case <-pg.done:
	case <-time.After(30 * time.Second):
		_ = pg.cmd.Process.Kill() // as above
		<-pg.done
	}
	pg.cmd = nil
}

func (pg *Postgres) logLine(s string) {
	pg.logMu.Lock()
	defer pg.logMu.Unlock()
	fmt.Fprintln(&pg.log, s)
}

// Log is what the server wrote.
func (pg *Postgres) Log() string {
	pg.logMu.Lock()
	defer pg.logMu.Unlock()
	return pg.log.String()
}
