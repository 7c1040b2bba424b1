package smtpserver

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// A client that sends a byte now and then does not keep its session: a command line (or AUTH
// response) must be whole within the idle timeout of the moment the wait began, a DATA body
// and each BDAT chunk within the data timeout. Each trickle lasts far longer (40s) than the
// client waits for the 421, so that only a deadline over the whole line or body can end it.
func TestSlowClients(t *testing.T) {
	// A second, not less: the client's own commands before the trickle must not time out on a
	// loaded machine. The trickle sends an octet every 10ms, far more often than that.
	const short = time.Second
	long := func(unit string) string { return strings.Repeat(unit, 4000/len(unit)) }
	idle := func(o *Options) { o.IdleTimeout = short }
	data := func(o *Options) { o.DataTimeout = short }
	for _, tc := range []struct {
		name    string
		mod     func(*Options)
		opening string // the transcript before the trickle
		trickle string
	}{
		{"command line", idle, "S: 220", "EHLO " + long("x")},
		{"AUTH response", func(o *Options) { withAuth(nil)(o); idle(o) }, "S: 220\nC: EHLO c\nS: 250\nC: AUTH LOGIN\nS: 334", long("QUFB")},
		{"DATA body", data, rcptGiven + "\nC: DATA\nS: 354", long("slow\r\n")},
		{"BDAT chunk", data, rcptGiven + "\nC: BDAT 100000 LAST", long("slow\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tc.mod)
			c := ts.dial(t, RoleMX)
			c.run(tc.opening)
			testutil.Trickle(t, c.conn, tc.trickle, 10*time.Millisecond)
			c.run(`
				S: 421 4.4.2 mx.example.test Error: timeout exceeded
				CLOSED`)
			if n := len(ts.spool.messages()); n != 0 {
				t.Errorf("%d messages committed", n)
			}
		})
	}
}

// A ClientHello trickled to the implicit TLS port is cut off like a trickled command line: the
// handshake must be done within the idle timeout, not the much longer handshake limit.
func TestSlowTLSHandshake(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(o *Options) { o.IdleTimeout = time.Second })
	conn, err := net.Dial("tcp", ts.addrs[RoleSubmissions])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// An octet every 20ms: the whole ClientHello would take several seconds, and the server
	// answers nothing before it is whole, so the only thing the client can see is the close.
	testutil.Trickle(t, conn, string(clientHello(t)), 20*time.Millisecond)
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.run("CLOSED")
}

// clientHello returns the first flight of a TLS client.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { // only its first flight counts: the handshake fails when b closes
		_ = tls.Client(a, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test"}).Handshake()
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}
