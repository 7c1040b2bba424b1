package lmtp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/testutil"
)

// fakeServer is one LMTP connection's server side, driven by a test's script: send a reply,
// expect a line, read the data. Mismatches are reported with t.Errorf from the server's
// goroutine; the test waits for the script at cleanup.
type fakeServer struct{ *testutil.Script }

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
		script(&fakeServer{testutil.NewScript(t, conn)})
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

// greet sends the greeting and answers LHLO with the keywords.
func (s *fakeServer) greet(keywords ...string) {
	s.T.Helper()
	s.Send("220 lmtp.example.test LMTP ready")
	s.Expect("LHLO tern.example.test")
	s.Multiline("250", append([]string{"lmtp.example.test"}, keywords...)...)
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
