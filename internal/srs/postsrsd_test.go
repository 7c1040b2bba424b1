package srs

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// postsrsd is Debian's postsrsd (1.x) serving its forward and reverse TCP lookup tables on
// loopback, with the secret of the test.
type postsrsd struct {
	forward, reverse string // host:port
}

// freeAddr returns a loopback address nothing listens on (the daemon binds it next).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func startPostSRSd(t *testing.T, secret, domain string) *postsrsd {
	t.Helper()
	bin, err := exec.LookPath("postsrsd")
	if err != nil {
		bin = "/usr/sbin/postsrsd"
		if _, err := os.Stat(bin); err != nil {
			testutil.MissingPeer(t, "postsrsd not found: install postsrsd (scripts/test-deps.sh)")
		}
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &postsrsd{forward: freeAddr(t), reverse: freeAddr(t)}
	_, fport, _ := net.SplitHostPort(p.forward)
	_, rport, _ := net.SplitHostPort(p.reverse)
	cmd := exec.Command(bin, "-s", secretFile, "-d", domain, "-l", "127.0.0.1", "-4", "-f", fport, "-r", rport)
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // stopped by a signal below: its status says nothing
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited already: exited tells
		<-exited
		if t.Failed() {
			t.Logf("postsrsd output:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", p.reverse)
		if err == nil {
			_ = c.Close() // a probe
			break
		}
		select {
		case <-exited:
			t.Fatalf("postsrsd exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postsrsd does not listen on %s: %s", p.reverse, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// get asks one of postsrsd's tables (Postfix's tcp_table protocol: "get KEY", "200 VALUE" or
// "500 reason").
func (p *postsrsd) get(t *testing.T, addr, key string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // one query a connection
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "get %s\n", key); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	code, val, _ := strings.Cut(strings.TrimRight(line, "\n"), " ")
	return val, code == "200"
}

// TestPostSRSd: with the same secret and domain, postsrsd reverses what tern forwards and tern
// reverses what postsrsd forwards (SRS0, and SRS1 for an address another forwarder rewrote);
// each refuses the other's address with one character of the hash changed.
func TestPostSRSd(t *testing.T) {
	const secret = "a secret both sides share"
	p := startPostSRSd(t, secret, "forwarder.test")
	s, err := New(Options{Secrets: [][]byte{[]byte(secret)}, Domain: "forwarder.test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sender := range []string{"alice@example.com", "Bob.Smith+tag@Mixed.Example.ORG",
		"SRS0=abcd=AB=example.com=carol@first.test"} {
		ours, err := s.Forward(sender)
		if err != nil {
			t.Fatal(err)
		}
		theirs, ok := p.get(t, p.forward, sender)
		if !ok {
			t.Fatalf("postsrsd forward %s: %s", sender, theirs)
		}
		if !strings.EqualFold(ours, theirs) {
			t.Errorf("forward %s: tern %s, postsrsd %s", sender, ours, theirs)
		}
		if back, ok := p.get(t, p.reverse, ours); !ok || back != sender {
			t.Errorf("postsrsd reverse of tern's %s = %q (%v), want %s", ours, back, ok, sender)
		}
		if back, err := s.Reverse(theirs); err != nil || back != sender {
			t.Errorf("tern reverse of postsrsd's %s = %q, %v; want %s", theirs, back, err, sender)
		}
		forged := flipHash(ours)
		if back, ok := p.get(t, p.reverse, forged); ok {
			t.Errorf("postsrsd reversed the forged %s to %s", forged, back)
		}
		if back, err := s.Reverse(flipHash(theirs)); err == nil {
			t.Errorf("tern reversed the forged %s to %s", flipHash(theirs), back)
		}
	}
}

// flipHash changes the first character of an SRS address's hash.
func flipHash(addr string) string {
	b := []byte(addr)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}
