package smtpserver

import (
	"net"
	"runtime"
	"strings"
	"testing"
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

// Many idle sessions, each waiting without its buffers, are each served when they speak, and
// every goroutine of theirs ends when their clients go.
func TestIdleSessionsEnd(t *testing.T) {
	ts := newTestServer(t, nil)
	before := runtime.NumGoroutine()
	var conns []*client
	for range 200 {
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO idle.example
			S: 250`)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.run(`
			C: NOOP
			S: 250 2.0.0 Ok`)
	}
	for _, c := range conns {
		c.conn.(*net.TCPConn).Close()
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}
