package testutil

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
)

// Script is the server side of one connection in a unit test of an SMTP or LMTP client,
// driven by the test: send a reply, expect a line, read the data. Mismatches are reported with
// T.Errorf (it runs in its own goroutine).
type Script struct {
	T    testing.TB
	Conn net.Conn
	BR   *bufio.Reader
	BW   *bufio.Writer
}

// NewScript serves conn.
func NewScript(t testing.TB, conn net.Conn) *Script {
	return &Script{T: t, Conn: conn, BR: bufio.NewReaderSize(conn, 64<<10), BW: bufio.NewWriter(conn)}
}

// Send writes reply lines (CRLF added to each) and flushes.
func (s *Script) Send(lines ...string) {
	for _, l := range lines {
		s.BW.WriteString(l + "\r\n")
	}
	if err := s.BW.Flush(); err != nil {
		s.T.Errorf("fake server: write: %v", err)
	}
}

// SendRaw writes octets as they are; the client may hang up before it has read them all.
func (s *Script) SendRaw(raw string) {
	s.BW.WriteString(raw)
	_ = s.BW.Flush() // the client may hang up first
}

// Multiline writes a multiline reply with code, one line per text, and flushes.
func (s *Script) Multiline(code string, texts ...string) {
	for i, l := range texts {
		sep := "-"
		if i == len(texts)-1 {
			sep = " "
		}
		s.BW.WriteString(code + sep + l + "\r\n")
	}
	s.Send()
}

// Line reads one line from the client, without its CRLF.
func (s *Script) Line() string {
	l, err := s.BR.ReadString('\n')
	if err != nil {
		s.T.Errorf("fake server: read: %v (got %q)", err, l)
		return ""
	}
	if !strings.HasSuffix(l, "\r\n") {
		s.T.Errorf("fake server: line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Expect reads a line and checks it; with replies, answers them.
func (s *Script) Expect(want string, replies ...string) {
	s.T.Helper()
	if got := s.Line(); got != want {
		s.T.Errorf("fake server: got %q, want %q", got, want)
	}
	if len(replies) > 0 {
		s.Send(replies...)
	}
}

// Data reads message text up to the "." line and returns it as sent (still stuffed).
func (s *Script) Data() string {
	var b strings.Builder
	for {
		l, err := s.BR.ReadString('\n')
		if err != nil {
			s.T.Errorf("fake server: reading data: %v", err)
			return b.String()
		}
		if l == ".\r\n" {
			return b.String()
		}
		b.WriteString(l)
	}
}

// StartTLS puts TLS on the server side.
func (s *Script) StartTLS(cfg *tls.Config) {
	tc := tls.Server(s.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		s.T.Errorf("fake server: TLS handshake: %v", err)
		return
	}
	s.Conn = tc
	s.BR.Reset(tc)
	s.BW.Reset(tc)
}

// WaitClosed reads until the client closes, and returns what it sent meanwhile.
func (s *Script) WaitClosed() string {
	b, _ := io.ReadAll(s.BR)
	return string(b)
}
