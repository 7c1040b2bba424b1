package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// fakeServer is the server side of a net.Pipe, driven by a test's script function: send a
// reply, expect a line, read the data. Mismatches are reported with t.Errorf from the server's
// goroutine; the test waits for the script to finish at cleanup.
type fakeServer struct{ *testutil.Script }

// runFake starts script on the server end of a pipe and returns the client end.
func runFake(t *testing.T, script func(s *fakeServer)) net.Conn {
	t.Helper()
	cconn, sconn := net.Pipe()
	return runFakeOn(t, cconn, sconn, script)
}

// runFakeTCP is runFake over loopback TCP, for what needs the kernel's buffering: a TLS
// handshake the client aborts while the server is still writing, which over an unbuffered pipe
// would wait for the timeout.
func runFakeTCP(t *testing.T, script func(s *fakeServer)) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cconn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sconn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return runFakeOn(t, cconn, sconn, script)
}

func runFakeOn(t *testing.T, cconn, sconn net.Conn, script func(s *fakeServer)) net.Conn {
	t.Helper()
	s := &fakeServer{testutil.NewScript(t, sconn)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer s.Conn.Close()
		script(s)
	}()
	t.Cleanup(func() {
		cconn.Close()
		wg.Wait()
	})
	return cconn
}

// ehlo answers an EHLO with the keywords.
func (s *fakeServer) ehlo(keywords ...string) {
	s.T.Helper()
	s.Expect("EHLO localhost")
	s.Multiline("250", append([]string{"mx.example.test"}, keywords...)...)
}

// testCert is a self-signed certificate for mx.example.test, and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	cert := testutil.SelfSigned(t, "mx.example.test")
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// traceLog records a client's trace as "C: line", "S: line" (with "~" for TLS).
type traceLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *traceLog) trace(dir Direction, tls bool, line string) {
	p := "C"
	if dir == Received {
		p = "S"
	}
	if tls {
		p += "~"
	}
	l.mu.Lock()
	l.lines = append(l.lines, p+": "+line)
	l.mu.Unlock()
}

func (l *traceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// newClient runs New on conn with opts (a short CommandTimeout unless set) and fails the test
// on an error.
func newClient(t *testing.T, conn net.Conn, opts Options) *Client {
	t.Helper()
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 10 * time.Second
	}
	c, err := New(context.Background(), conn, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// wantError checks that err is an *Error for cmd with code (0: none) and permanence.
func wantError(t *testing.T, err error, cmd string, code int, permanent bool) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if e.Command != cmd || e.Code != code || e.Permanent != permanent || e.Temporary() == permanent {
		t.Fatalf("error %+v (%v), want command %s, code %d, permanent %v", e, e, cmd, code, permanent)
	}
}

// gotError is wantError returning the *Error, for the tests that look further into it.
func gotError(t *testing.T, err error, cmd string, code int, permanent bool) *Error {
	t.Helper()
	wantError(t, err, cmd, code, permanent)
	return err.(*Error)
}

func fmtSscan(s string, n *int) (int, error)          { return fmt.Sscan(s, n) }
func ioReadFull(r io.Reader, buf []byte) (int, error) { return io.ReadFull(r, buf) }
