package test

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdUnitVerify checks contrib/systemd/tern.service with systemd-analyze verify: its
// syntax, every directive known to this systemd, and the ExecStart binary. The copy points
// ExecStart at the binary under test (the unit's /usr/local/bin/tern is not on a test machine);
// the user tern need not exist (verify does not resolve User=).
func TestSystemdUnitVerify(t *testing.T) {
	t.Parallel()
	analyze := needTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../contrib/systemd/tern.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"Type=notify", "User=tern", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/tern", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "UMask=0077", "ExecReload=/bin/kill -HUP $MAINPID",
		"LimitNOFILE="} {
		if !strings.Contains(text, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	copied := strings.Replace(text, "ExecStart=/usr/local/bin/tern ", "ExecStart="+ternBin+" ", 1)
	if copied == text {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/tern: update this test")
	}
	path := filepath.Join(t.TempDir(), "tern.service")
	if err := os.WriteFile(path, []byte(copied), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runTool(t, 60*time.Second, "", analyze, "verify", path)
	// verify prints warnings for what it cannot check here but exits 0; anything about this
	// unit's own lines (unknown directive, bad value) is a failure too.
	if code != 0 || strings.Contains(stderr, "tern.service:") {
		t.Fatalf("systemd-analyze verify: exit %d\n%s", code, stderr)
	}
}

// TestSystemdNotify runs `tern serve` as systemd's Type=notify would: with $NOTIFY_SOCKET, a
// datagram socket of the test's. READY=1 comes once the listeners take connections, STOPPING=1
// after SIGTERM, before the process exits.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "tn-sd-") // short: a socket path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // ends the reader goroutine
	states := make(chan string, 8)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case s := <-states:
			if s != want {
				t.Fatalf("sd_notify: got %q, want %q", s, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s within 15s", want)
		}
	}

	tn := startTern(t, ternOpts{Env: []string{"NOTIFY_SOCKET=" + sock}})
	next("READY=1")
	// Ready means serving: the MX listener greets.
	c, err := net.DialTimeout("tcp", tn.SMTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	greeting := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(greeting)
	c.Close()
	if err != nil || !regexp.MustCompile(`^220 `).Match(greeting[:n]) {
		t.Fatalf("after READY=1: greeting %q, %v", greeting[:n], err)
	}
	tn.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	if code, ok := tn.Wait(15 * time.Second); !ok || code != 0 {
		t.Fatalf("after SIGTERM: exit %d (exited: %v)", code, ok)
	}
}
