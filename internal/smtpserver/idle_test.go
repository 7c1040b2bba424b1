package smtpserver

import (
	"crypto/tls"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

// An idle session reads its next command into a small buffer of its own (readIdle, wakeSize);
// commands that do not fit, or that end in a later read, are read on through the session's
// reader as before.
func TestIdleWakeRead(t *testing.T) {
	ts := newTestServer(t, nil)
	var group strings.Builder // a pipelined group past wakeSize
	group.WriteString("MAIL FROM:<a@b.example>\r\n")
	for range 30 {
		group.WriteString("RCPT TO:<bob@example.test>\r\n")
	}
	group.WriteString("RSET\r\n")
	for _, tc := range []struct{ name, transcript string }{
		{"line-past-wake", `
			S: 220
			C: EHLO c
			S: 250
			C: NOOP ` + strings.Repeat("x", 600) + `
			S: 500 5.5.2 Error: line too long
			C: RSET
			S: 250`},
		{"group-past-wake", `
			S: 220
			C: EHLO c
			S: 250
			W: ` + strings.ReplaceAll(group.String(), "\r\n", `\r\n`) + `
			S: 250 2.1.0 Ok` + strings.Repeat(`
			S: 250 2.1.5 Ok`, 30) + `
			S: 250 2.0.0 Ok
			C: QUIT
			S: 221`},
		{"line-in-pieces", `
			S: 220
			W: EH
			W: LO c\r
			W: \n
			S: 250
			W: NOOP\r\nNO
			S: 250 2.0.0 Ok
			W: OP\r\n
			S: 250 2.0.0 Ok`},
		{"message-after-wake", `
			S: 220
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n
			S: 250 2.1.0
			S: 250 2.1.5
			S: 354
			W: Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n
			S: 250 2.0.0 Ok: queued
			S: 221
			CLOSED`},
		{"bare-lf-in-wake", `
			S: 220
			W: EHLO c\n
			S: 521 5.5.2
			CLOSED`},
	} {
		t.Run(tc.name, func(t *testing.T) { ts.dial(t, RoleMX).run(tc.transcript) })
	}
	if got := len(ts.spool.messages()); got != 1 {
		t.Errorf("%d messages queued, want 1", got)
	}
}

// dialGreeted opens n MX sessions, each greeted and past EHLO.
func (ts *testServer) dialGreeted(t *testing.T, n int) []*client {
	t.Helper()
	var conns []*client
	for range n {
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO idle.example
			S: 250`)
		conns = append(conns, c)
	}
	return conns
}

// Many idle sessions, each waiting without its buffers, are each served when they speak, and
// every goroutine of theirs ends when their clients go.
func TestIdleSessionsEnd(t *testing.T) {
	ts := newTestServer(t, nil)
	before := runtime.NumGoroutine()
	conns := ts.dialGreeted(t, 200)
	for _, c := range conns {
		c.run(`
			C: NOOP
			S: 250 2.0.0 Ok`)
	}
	for _, c := range conns {
		_ = c.conn.Close() // the client leaves; the server sees EOF
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

// The Received field names the client by its address literal (RFC 5321 §4.1.3: IPv6 ones with
// their tag, a mapped IPv4 address as IPv4) and the protocol with its RFC 3848 suffixes.
func TestReceivedHeader(t *testing.T) {
	for _, tc := range []struct {
		name, remote string
		esmtp, tls   bool
		user         string
		want         string
	}{
		{"ipv4", "192.0.2.7:1234", true, false, "", `^Received: from c\.example \(\[192\.0\.2\.7\]\)\r\n\tby mx\.example\.test \(tern\) with ESMTP id ID1\r\n\tfor <bob@example\.test>; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n$`},
		{"ipv6", "[2001:db8::1]:25", false, false, "", `^Received: from c\.example \(\[IPv6:2001:db8::1\]\)\r\n\tby mx\.example\.test \(tern\) with SMTP id ID1\r\n`},
		{"mapped", "[::ffff:192.0.2.8]:25", true, true, "u", `^Received: from c\.example \(\[192\.0\.2\.8\]\)\r\n\t\(using .*\)\r\n\tby mx\.example\.test \(tern\) with ESMTPSA id ID1\r\n`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &session{
				opts:   &Options{Hostname: "mx.example.test"},
				remote: netip.MustParseAddrPort(tc.remote),
				helo:   "c.example",
				esmtp:  tc.esmtp,
				user:   tc.user,
				tx:     &transaction{rcpts: []envelope.Recipient{{Addr: "bob@example.test"}}},
			}
			if tc.tls {
				s.tls = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
			}
			if got := s.receivedHeader("ID1"); !regexp.MustCompile(tc.want).MatchString(got) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
