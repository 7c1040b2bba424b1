package test

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestReloadMovesListener moves the MX listener to another port in the file of a running
// server: after SIGHUP a new connection to the new port is greeted, the old port refuses new
// connections, and a session opened on the old port before still completes a transaction.
func TestReloadMovesListener(t *testing.T) {
	t.Parallel()
	p1, p2 := freeAddr(t), freeAddr(t)
	config := func(addr string) string {
		return fmt.Sprintf("[[listener]]\nname = \"mx\"\naddress = %q\nrole = \"mx\"\n", addr)
	}
	tn := startTern(t, ternOpts{Config: config(p1), Named: true})
	tn.AddUser("bob@"+testDomain, "pw-bob")
	before := greeted(t, p1, false)
	before.ehlo("client.example.org")

	if err := os.WriteFile(tn.configPath, []byte(config(p2)), 0o600); err != nil {
		t.Fatal(err)
	}
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 10*time.Second, 1, "configuration reloaded: new sessions take the new settings")
	greeted(t, p2, false).cmd("QUIT", `221 .*`)
	if c, err := net.Dial("tcp", p1); err == nil {
		c.Close()
		t.Fatalf("the old address %s still accepts connections", p1)
	}
	before.sendMessage("alice@example.org", "bob@"+testDomain, "Subject: moved\r\n\r\nhi\r\n")
	before.cmd("QUIT", `221 .*`)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
