package smtpserver

import (
	"sync/atomic"
	"time"
)

// Session goroutines are reused: one whose session ended waits a moment for the next
// connection instead of ending. A new goroutine starts with a small stack and grows it, by
// copying, as the session goes deeper (parsing, policy, the account store's SQL, the queue's
// commit): runtime.newstack and copystack were ~4 % of the server's CPU under load. A reused
// one keeps the stack earlier sessions grew (until a GC shrinks it while idle).
const (
	// maxIdleGoroutines bounds the goroutines waiting for a connection, and so what their
	// stacks pin (a few tens of KB each).
	maxIdleGoroutines = 32
	// idleGoroutineLinger is how long an idle goroutine waits for a connection before it ends,
	// so that a server at rest goes back to its baseline of goroutines.
	idleGoroutineLinger = time.Second
)

// sessionPool hands accepted sessions to idle session goroutines.
type sessionPool struct {
	next chan *session // unbuffered: a send succeeds only when an idle goroutine takes it
	idle atomic.Int32  // goroutines waiting on next
	// closed is closed by Shutdown: idle goroutines end at once.
	closed chan struct{}
}

func newSessionPool() *sessionPool {
	return &sessionPool{next: make(chan *session), closed: make(chan struct{})}
}

// handOff gives sess to an idle goroutine; false when none is waiting.
func (p *sessionPool) handOff(sess *session) bool {
	if p.idle.Load() == 0 {
		return false // the common case when idle: no select
	}
	select {
	case p.next <- sess:
		return true
	default:
		return false
	}
}

// wait waits, as an idle goroutine, for the next session; nil when the goroutine should end
// (enough others wait, none came in time, or the server shuts down).
func (p *sessionPool) wait(timer *time.Timer) *session {
	if p.idle.Add(1) > maxIdleGoroutines {
		p.idle.Add(-1)
		return nil
	}
	defer p.idle.Add(-1)
	timer.Reset(idleGoroutineLinger)
	defer timer.Stop()
	select {
	case sess := <-p.next:
		return sess
	case <-timer.C:
		return nil
	case <-p.closed:
		return nil
	}
}

// runSessions serves sess and then, on the same goroutine, the sessions the accept loop hands
// it, until none comes. The goroutine holds one count of s.wg for its whole life.
func (s *Server) runSessions(sess *session) {
	defer s.wg.Done()
	timer := time.NewTimer(idleGoroutineLinger)
	timer.Stop()
	for sess != nil {
		s.runSession(sess)
		sess = s.pool.wait(timer)
	}
}

// runSession serves one session and forgets it.
func (s *Server) runSession(sess *session) {
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	sess.serve()
}
