package smtpserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recordConn notes the type of every TLS record the server sends, so that a test can tell a
// close_notify from a bare TCP close: Go's TLS client returns io.EOF for both.
type recordConn struct {
	net.Conn
	mu      sync.Mutex
	hdr     []byte // the part of the next record header read so far
	skip    int    // octets of the current record's body still to come
	lastTyp byte   // type of the last record that began
}

func (r *recordConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if r.skip > 0 {
			k := min(r.skip, len(b))
			r.skip -= k
			b = b[k:]
			continue
		}
		r.hdr = append(r.hdr, b[0])
		b = b[1:]
		if len(r.hdr) == 5 {
			r.lastTyp = r.hdr[0]
			r.skip = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hdr = r.hdr[:0]
		}
	}
	return n, err
}

func (r *recordConn) last() byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastTyp
}

// recordAlert is the TLS record type of an alert. Only TLS 1.2 shows it on the wire (TLS 1.3
// hides every record type after the handshake), so the tests below use TLS 1.2.
const recordAlert = 21

// The server ends every TLS session with a close_notify: after QUIT, after a timeout, after
// too many errors, at shutdown; on the implicit TLS port and after STARTTLS.
func TestTLSCloseNotify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		role   Role
		mod    func(*Options)
		script string
		end    func(ts *testServer)
	}{
		{"quit-implicit", RoleSubmissions, nil, "C: QUIT\nS: 221 2.0.0 Bye", nil},
		{"quit-starttls", RoleMX, nil, "C: QUIT\nS: 221 2.0.0 Bye", nil},
		{"idle-timeout", RoleSubmissions, func(o *Options) { o.IdleTimeout = time.Second },
			"S: 421 4.4.2 mx.example.test Error: timeout exceeded", nil},
		{"too-many-errors", RoleMX, func(o *Options) { o.MaxErrors = 2 },
			"C: XYZZY\nS: 500\nC: XYZZY\nS: 500\nS: 421 4.7.0 mx.example.test Error: too many errors", nil},
		{"shutdown", RoleSubmissions, nil, "S: 421 4.3.2 mx.example.test Service shutting down",
			func(ts *testServer) { ts.shutdownAsync(5 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tc.mod)
			conn, err := net.Dial("tcp", ts.addrs[tc.role])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
			if tc.role == RoleMX {
				c.run("S: 220\nC: EHLO c\nS: 250\nC: STARTTLS\nS: 220")
			}
			rc := &recordConn{Conn: conn}
			tlsc := tls.Client(rc, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test", MaxVersion: tls.VersionTLS12})
			if err := tlsc.Handshake(); err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			c.conn, c.r = tlsc, bufio.NewReader(tlsc)
			if tc.role == RoleSubmissions {
				c.run("S: 220")
			}
			if tc.end != nil {
				tc.end(ts)
			}
			c.run(tc.script)
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if line, err := c.r.ReadString('\n'); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last reply: %q, %v; want io.EOF", line, err)
			}
			if typ := rc.last(); typ != recordAlert {
				t.Fatalf("the last record from the server has type %d, want %d (close_notify)", typ, recordAlert)
			}
		})
	}
}
