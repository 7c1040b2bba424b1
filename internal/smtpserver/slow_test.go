package smtpserver

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// A client that sends a byte now and then does not keep its session: a command line must be
// whole within the idle timeout of the moment the wait began, a DATA body and each BDAT chunk
// within the data timeout. Each trickle lasts far longer than the client waits for the 421, so
// that only a deadline over the whole line or body can end it in time.
func TestSlowClients(t *testing.T) {
	const every = 10 * time.Millisecond
	long := func(unit string) string { return strings.Repeat(unit, 4000/len(unit)) } // 40s of trickle
	t.Run("command line", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.expect("220")
		testutil.Trickle(t, c.conn, "EHLO "+long("x"), every)
		c.run(`
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
	})
	t.Run("DATA body", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.DataTimeout = 300 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354`)
		testutil.Trickle(t, c.conn, long("slow\r\n"), every)
		c.run(`
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
		if n := len(ts.spool.messages()); n != 0 {
			t.Errorf("%d messages committed", n)
		}
	})
	t.Run("BDAT chunk", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.DataTimeout = 300 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: BDAT 100000 LAST`)
		testutil.Trickle(t, c.conn, long("slow\r\n"), every)
		c.run(`
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
	})
	t.Run("AUTH response", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { withAuth(nil)(o); o.IdleTimeout = 300 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250
			C: AUTH LOGIN
			S: 334`)
		testutil.Trickle(t, c.conn, long("QUFB"), every)
		c.run(`
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
	})
}
