package smtpserver

import (
	"testing"
	"time"
)

// TestSessionsCount checks that Sessions counts the sessions open on every listener, and that a
// session no longer counts once it has ended.
func TestSessionsCount(t *testing.T) {
	ts := newTestServer(t, nil)
	waitSessions := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for ts.srv.Sessions() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Sessions() = %d, want %d", ts.srv.Sessions(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSessions(0)
	mx := ts.dial(t, RoleMX)
	mx.expect(`220 `)
	sub := ts.dial(t, RoleSubmissions)
	sub.expect(`220 `)
	waitSessions(2)
	mx.run(`
		C: QUIT
		S: 221 2\.0\.0 Bye
		CLOSED`)
	waitSessions(1)
	sub.conn.Close()
	waitSessions(0)
}
