package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/testutil"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// memSpool is an in-memory Spool that records committed messages and can be told to fail.
type memSpool struct {
	mu        sync.Mutex
	n         int
	committed []*memMsg
	newErr    error // NewMessage fails
	writeErr  error // Write fails after writeAfter octets
	writeAt   int
	commitErr error
	wrote     func(body []byte) // called after each write to a message, with all it holds
}

type memMsg struct {
	s       *memSpool
	id      string
	body    bytes.Buffer
	env     *envelope.Envelope
	aborted bool
}

func (s *memSpool) NewMessage() (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.newErr != nil {
		return nil, s.newErr
	}
	s.n++
	return &memMsg{s: s, id: "ABCDEF" + strconv.Itoa(1000000+s.n)}, nil
}

func (s *memSpool) messages() []*memMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*memMsg(nil), s.committed...)
}

func (m *memMsg) ID() string { return m.id }

func (m *memMsg) Write(p []byte) (int, error) {
	m.s.mu.Lock()
	werr, at, wrote := m.s.writeErr, m.s.writeAt, m.s.wrote
	m.s.mu.Unlock()
	if werr != nil && m.body.Len()+len(p) > at {
		return 0, werr
	}
	n, err := m.body.Write(p)
	if wrote != nil {
		wrote(m.body.Bytes())
	}
	return n, err
}

func (m *memMsg) Commit(_ context.Context, env *envelope.Envelope) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.s.commitErr != nil {
		return m.s.commitErr
	}
	m.env = env
	m.s.committed = append(m.s.committed, m)
	return nil
}

func (m *memMsg) Abort() { m.aborted = true }

// memAccounts is a set of account addresses.
type memAccounts map[string]bool

func (a memAccounts) Exists(_ context.Context, addr string) (bool, error) {
	return a[strings.ToLower(addr)], nil
}

// panicChecker panics on a chosen recipient, to test the session's recover.
type panicChecker struct {
	RcptChecker
	on string
}

func (p panicChecker) CheckRcpt(ctx context.Context, c policy.Client, rcpt smtp.Address) smtp.Reply {
	if rcpt.Local == p.on {
		panic("test panic")
	}
	return p.RcptChecker.CheckRcpt(ctx, c, rcpt)
}

type fakeFlusher struct{ n int }

func (f fakeFlusher) Flush(string, bool) int { return f.n }

// testServer is a Server on a loopback listener with in-memory collaborators.
type testServer struct {
	srv   *Server
	spool *memSpool
	addrs map[Role]string
	logs  *testutil.SyncBuffer
}

// testCertificate is made once by TestMain: generating a key per test would dominate run time.
var testCertificate tls.Certificate

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-smtpserver-test")
	if err != nil {
		panic(err)
	}
	testCertificate, _, err = tlsutil.LoadOrCreate(dir, "mx.example.test")
	os.RemoveAll(dir)
	if err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func testCert(t testing.TB) tls.Certificate { return testCertificate }

// newTestServer starts a server; mod may change the options before it starts.
func newTestServer(t testing.TB, mod func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{spool: &memSpool{}, addrs: map[Role]string{}, logs: &testutil.SyncBuffer{}}
	opts := Options{
		Hostname:         "mx.example.test",
		PostmasterDomain: "example.test",
		TLS:              tlsutil.ServerConfig(testCert(t)),
		Spool:            ts.spool,
		Rcpts: policy.NewRelay([]string{"example.test"}, memAccounts{
			"bob@example.test": true, "alice@example.test": true, "postmaster@example.test": true,
			"jørgen@example.test": true,
		}),
		Flusher: fakeFlusher{n: 1},
		ETRN:    policy.NewETRN(func(d string) bool { return strings.EqualFold(d, "example.test") }, policy.ETRNLimits{}),
		Logger:  slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	ts.srv = New(opts)
	for _, role := range []Role{RoleMX, RoleSubmission, RoleSubmissions} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts.addrs[role] = ln.Addr().String()
		go func() { _ = ts.srv.Serve(ln, role) }() // ErrServerClosed at the Shutdown below
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	return ts
}

// client is one test connection that reads replies and checks them against expectations.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (ts *testServer) dial(t *testing.T, role Role) *client {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addrs[role])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if role == RoleSubmissions {
		c.startTLS()
	}
	return c
}

func (c *client) startTLS() {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// send writes raw octets.
func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one whole reply (all its lines) and returns it with "\n" between lines.
func (c *client) reply() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return "", errors.New("reply line without CRLF: " + strconv.Quote(line))
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// expect reads one reply and checks it against a regexp anchored at its start.
func (c *client) expect(pattern string) string {
	c.t.Helper()
	got, err := c.reply()
	if err != nil {
		c.t.Fatalf("waiting for %q: got %q, %v", pattern, got, err)
	}
	if !regexp.MustCompile(`^(?s:` + pattern + `)`).MatchString(got) {
		c.t.Fatalf("reply %q does not match %q", got, pattern)
	}
	return got
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
		c.t.Fatalf("connection still open, got %q", line)
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatalf("connection still open after 5s (%q so far)", line)
	}
}

// run plays a transcript: "C: text" sends text+CRLF, "W: text" sends raw text with Go escapes
// (\r, \n) interpreted, "S: regexp" expects a reply starting with a match, "CLOSED" expects the
// server to hang up.
func (c *client) run(transcript string) {
	c.t.Helper()
	for _, line := range strings.Split(strings.Trim(transcript, "\n"), "\n") {
		line = strings.TrimLeft(line, "\t ")
		switch {
		case line == "":
		case line == "C:":
			c.send("\r\n")
		case strings.HasPrefix(line, "C: "):
			c.send(line[3:] + "\r\n")
		case strings.HasPrefix(line, "W: "):
			s, err := strconv.Unquote(`"` + strings.ReplaceAll(line[3:], `"`, `\"`) + `"`)
			if err != nil {
				c.t.Fatalf("bad W: line %q: %v", line, err)
			}
			c.send(s)
		case strings.HasPrefix(line, "S: "):
			c.expect(line[3:])
		case line == "CLOSED":
			c.expectClosed()
		default:
			c.t.Fatalf("bad transcript line %q", line)
		}
	}
}
