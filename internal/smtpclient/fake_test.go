package smtpclient

import (
	"bufio"
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
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

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
	s := &fakeServer{t: t, conn: sconn}
	s.br = bufio.NewReaderSize(sconn, 64<<10)
	s.bw = bufio.NewWriter(sconn)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer s.conn.Close()
		script(s)
	}()
	t.Cleanup(func() {
		cconn.Close()
		wg.Wait()
	})
	return cconn
}

// send writes reply lines (CRLF added to each) and flushes.
func (s *fakeServer) send(lines ...string) {
	for _, l := range lines {
		s.bw.WriteString(l + "\r\n")
	}
	if err := s.bw.Flush(); err != nil {
		s.t.Errorf("fake server: write: %v", err)
	}
}

// sendRaw writes octets as they are; the client may hang up before it has read them all.
func (s *fakeServer) sendRaw(raw string) {
	s.bw.WriteString(raw)
	s.bw.Flush()
}

// line reads one line from the client, without its CRLF.
func (s *fakeServer) line() string {
	l, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Errorf("fake server: read: %v (got %q)", err, l)
		return ""
	}
	if !strings.HasSuffix(l, "\r\n") {
		s.t.Errorf("fake server: line %q does not end in CRLF", l)
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

// ehlo answers an EHLO with the keywords.
func (s *fakeServer) ehlo(keywords ...string) {
	s.t.Helper()
	s.expect("EHLO localhost")
	lines := append([]string{"mx.example.test"}, keywords...)
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		s.bw.WriteString("250" + sep + l + "\r\n")
	}
	s.send()
}

// data reads message text up to the "." line and returns it as sent (still stuffed).
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

// startTLS puts TLS on the server side.
func (s *fakeServer) startTLS(cfg *tls.Config) {
	tc := tls.Server(s.conn, cfg)
	if err := tc.Handshake(); err != nil {
		s.t.Errorf("fake server: TLS handshake: %v", err)
		return
	}
	s.conn = tc
	s.br.Reset(tc)
	s.bw.Reset(tc)
}

// waitClosed reads until the client closes, and returns what it sent meanwhile.
func (s *fakeServer) waitClosed() string {
	b, _ := io.ReadAll(s.br)
	return string(b)
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
func wantError(t *testing.T, err error, cmd string, code int, permanent bool) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if e.Command != cmd || e.Code != code || e.Permanent != permanent || e.Temporary() == permanent {
		t.Fatalf("error %+v (%v), want command %s, code %d, permanent %v", e, e, cmd, code, permanent)
	}
	return e
}

func fmtSscan(s string, n *int) (int, error)          { return fmt.Sscan(s, n) }
func ioReadFull(r io.Reader, buf []byte) (int, error) { return io.ReadFull(r, buf) }
