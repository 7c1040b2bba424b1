package smtpserver

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// A session goroutine whose session ended waits for the next connection, serves it, and ends
// at Shutdown: the sessions it serves are whole, one after another.
func TestSessionGoroutineReused(t *testing.T) {
	ts := newTestServer(t, nil)
	session := `
		C: EHLO reuse.example
		S: 250
		C: MAIL FROM:<a@example.org>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: reused
		C:
		C: body
		C: .
		S: 250 2.0.0 Ok: queued
		C: QUIT
		S: 221`
	for i := range 3 {
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220`)
		// Greeted by the goroutine of the session before, not by a new one.
		if n := ts.srv.pool.idle.Load(); i > 0 && n != 0 {
			t.Errorf("session %d: greeted with %d goroutines idle, want the idle one reused", i, n)
		}
		c.run(session)
		_ = c.conn.Close()
		waitFor(t, func() bool { return ts.srv.pool.idle.Load() == 1 })
	}
	if got := len(ts.spool.messages()); got != 3 {
		t.Errorf("%d messages queued, want 3", got)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.srv.pool.idle.Load() == 0 && runtime.NumGoroutine() < before })
}

// The goroutines left idle by a burst of sessions are bounded, and end when no connection
// comes for idleGoroutineLinger.
func TestIdleGoroutinesBounded(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range ts.dialGreeted(t, maxIdleGoroutines+8) {
		_ = c.conn.Close()
	}
	waitFor(t, func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		return len(ts.srv.sessions) == 0
	})
	if n := ts.srv.pool.idle.Load(); n > maxIdleGoroutines {
		t.Errorf("%d idle goroutines, want at most %d", n, maxIdleGoroutines)
	}
	waitFor(t, func() bool { return ts.srv.pool.idle.Load() == 0 })
}
