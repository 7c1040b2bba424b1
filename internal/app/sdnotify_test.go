package app

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSDNotify sends states to a datagram socket named by path and by an abstract name
// ('@', as systemd may give), and nothing when no socket is named.
func TestSDNotify(t *testing.T) {
	dir, err := os.MkdirTemp("", "tn-sd-") // short: a socket path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // a temp dir: best effort
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct{ env, listen string }{
		{filepath.Join(dir, "notify"), filepath.Join(dir, "notify")},
		{fmt.Sprintf("@tern-test-%d", os.Getpid()), fmt.Sprintf("\x00tern-test-%d", os.Getpid())},
	} {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tc.listen, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		n := sdNotifier{addr: tc.env, log: log}
		n.notify("READY=1")
		buf := make([]byte, 64)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != "READY=1" {
			t.Errorf("%s: got %q, %v", tc.env, buf[:k], err)
		}
		_ = conn.Close() // the test is over for this socket
	}
	sdNotifier{log: log}.notify("READY=1") // no socket: nothing, no panic
}
