package smtpserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// dialListener starts l on the test server and connects to it.
func (ts *testServer) dialListener(t *testing.T, l Listener) *client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.srv.ServeListener(ln, l) }() // ErrServerClosed at the test server's Shutdown
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// TestListenerSettings: what a listener changes of the options (its limits, TLS, AUTH and its
// mechanisms) holds on it and nowhere else.
func TestListenerSettings(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	for _, tc := range []struct {
		name       string
		l          Listener
		transcript string
	}{
		{"mx2 with its own size and no TLS", Listener{Name: "mx2", Role: RoleMX, NoTLS: true, MaxMessageSize: 1000, Mechanisms: []string{}}, `
			S: 220
			C: EHLO trogdor
			S: 250-mx.example.test\n(250-[^\n]*\n)*250-SIZE 1000\n
			C: STARTTLS
			S: 502 5.5.1
			C: AUTH PLAIN AHVzZXIAcGFzcw==
			S: 503 5.5.1 Error: authentication not enabled
			C: MAIL FROM:<a@example.org> SIZE=1001
			S: 552 5.3.4
		`},
		{"submission with PLAIN only", Listener{Name: "sub-plain", Role: RoleSubmission, RequireAuth: true, Mechanisms: []string{"PLAIN"}}, `
			S: 220
			C: EHLO trogdor
			S: 250-mx.example.test\n(250-[^\n]*\n)*250-AUTH PLAIN\n
			C: MAIL FROM:<a@example.org>
			S: 530 5.7.0 Authentication required
			C: AUTH LOGIN
			S: 504 5.5.4
		`},
		{"TLS required", Listener{Name: "mx-tls", Role: RoleMX, RequireTLS: true}, `
			S: 220
			C: EHLO trogdor
			S: 250-mx.example.test\n(250-[^\n]*\n)*250-STARTTLS\n
			C: MAIL FROM:<a@example.org>
			S: 530 5.7.0 Must issue a STARTTLS command first
			C: AUTH PLAIN AHVzZXIAcGFzcw==
			S: 530 5.7.0 Must issue a STARTTLS command first
		`},
		{"mx without AUTH required", Listener{Name: "mx3", Role: RoleMX}, `
			S: 220
			C: EHLO trogdor
			S: 250-mx.example.test\n(250-[^\n]*\n)*250-SIZE 10240000\n
			C: MAIL FROM:<a@example.org>
			S: 250 2.1.0
		`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.dialListener(t, tc.l).run(tc.transcript)
			if !strings.Contains(ts.logs.String(), "listener="+tc.l.Name) {
				t.Errorf("no log line names listener %s", tc.l.Name)
			}
		})
	}
}
