package lmtp

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
)

// fakeServer is one LMTP connection's server side, driven by a test's script: send a reply,
// expect a line, read the data. Mismatches are reported with t.Errorf from the server's
// goroutine; the test waits for the script at cleanup.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// serveFake listens on loopback TCP, or on a unix socket with unix set, runs script on the
// first connection, and returns the Options.Addr to reach it.
func serveFake(t *testing.T, unix bool, script func(s *fakeServer)) string {
	t.Helper()
	network, laddr := "tcp", "127.0.0.1:0"
	if unix {
		network, laddr = "unix", filepath.Join(t.TempDir(), "lmtp")
	}
	ln, err := net.Listen(network, laddr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return // closed at cleanup: the client never came
		}
		defer conn.Close()
		script(&fakeServer{t: t, conn: conn, br: bufio.NewReader(conn)})
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	if unix {
		return "unix:" + laddr
	}
	return ln.Addr().String()
}

// send writes reply lines, CRLF added to each.
func (s *fakeServer) send(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	if _, err := io.WriteString(s.conn, b.String()); err != nil {
		s.t.Errorf("fake server: write: %v", err)
	}
}

// line reads one line from the client, without its CRLF.
func (s *fakeServer) line() string {
	l, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Errorf("fake server: read: %v (got %q)", err, l)
		return ""
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads a line and checks it; with replies, answers them.
func (s *fakeServer) expect(want string, replies ...string) {
	s.t.Helper()
	if got := s.line(); got != want {
		s.t.Errorf("fake server: got %q, want %q", got, want)
	}
	if len(replies) > 0 {
		s.send(replies...)
	}
}

// greet sends the greeting and answers LHLO with the keywords.
func (s *fakeServer) greet(keywords ...string) {
	s.t.Helper()
	s.send("220 lmtp.example.test LMTP ready")
	s.expect("LHLO tern.example.test")
	lines := append([]string{"lmtp.example.test"}, keywords...)
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		s.send("250" + sep + l)
	}
}

// data reads message text up to the "." line and returns it as sent.
func (s *fakeServer) data() string {
	var b strings.Builder
	for {
		l, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Errorf("fake server: reading data: %v", err)
			return b.String()
		}
		if l == ".\r\n" {
			return b.String()
		}
		b.WriteString(l)
	}
}

// waitClosed reads until the client closes, and returns what it sent meanwhile.
func (s *fakeServer) waitClosed() string {
	b, _ := io.ReadAll(s.br)
	return string(b)
}

// bytesBody is a delivery.Body in memory; opens counts the calls to Open.
type bytesBody struct {
	b     []byte
	opens int
}

var _ delivery.Body = (*bytesBody)(nil)

func (b *bytesBody) Open() (io.ReadCloser, error) {
	b.opens++
	return io.NopCloser(bytes.NewReader(b.b)), nil
}

func (b *bytesBody) Size() int64 { return int64(len(b.b)) }

// testLogger logs to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
