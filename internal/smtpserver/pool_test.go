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
	// A goroutine counts itself idle just before it waits on the pool's channel: a connection
	// accepted in between goes to a new goroutine (harmless: the other one ends after its
	// linger). So most sessions, not all, must be greeted by the goroutine of the one before.
	const sessions = 6
	reused := 0
	for i := range sessions {
		idle := ts.srv.pool.idle.Load()
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220`)
		if i > 0 && ts.srv.pool.idle.Load() == idle-1 {
			reused++ // greeted by a goroutine that was idle, not by a new one
		}
		c.run(session)
		_ = c.conn.Close()
		waitFor(t, func() bool { return ts.srv.pool.idle.Load() >= 1 })
	}
	if reused < sessions-2 {
		t.Errorf("%d of %d sessions reused an idle goroutine, want nearly all", reused, sessions-1)
	}
	if n, most := ts.srv.pool.idle.Load(), int32(1+sessions-1-reused); n > most {
		t.Errorf("%d goroutines idle after sessions one at a time, want at most %d (one, and one per miss)", n, most)
	}
	if got := len(ts.spool.messages()); got != sessions {
		t.Errorf("%d messages queued, want %d", got, sessions)
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
