// Package smtpserver runs the SMTP listeners and the per-connection session state machine
// (RFC 5321 with PIPELINING, SIZE, 8BITMIME, BINARYMIME, CHUNKING, DSN, SMTPUTF8, ETRN, LIMITS,
// ENHANCEDSTATUSCODES and STARTTLS).
//
// A session reads bounded lines, parses them with package smtp, asks policy what to accept and
// hands each accepted message to a Spool, answering "250 ... queued as ID" only after the spool
// says the message is durable. Every fault is answered with a reply that carries an enhanced
// status code; a panic in one session is recovered, logged and answered with 421 without
// touching any other session. Decisions (relay control, connection and rate limits) live in
// package policy, storage in the Spool: neither is decided here. Content filters
// (Options.Filters: milters, rspamd) are asked likewise, and the session applies their
// verdicts (filter.go).
//
// # Reading and replying
//
// Command lines end in CRLF. A bare LF ends the session with 521 (the text after it must never
// run as a command); a bare CR, a NUL or an over-long line costs that line a 500. Replies are
// queued while a whole command line is waiting in the buffer, and written before every wait for
// the client (the next line, the data of a BDAT chunk), so a pipelined group gets its replies in
// one write and a partial line never holds back replies that are ready. Every error reply counts towards MaxErrors, except the 452s of a
// recipient overshoot (MaxRcptOvershoot); past the budget the session ends with 421. Message
// text is checked as it streams (bare CR or LF, NUL, long lines, size) and always read to its
// end, so a refused message costs only its transaction.
//
// # Time limits
//
// Every wait for the client is bounded as a whole, not per read: a command line by the idle
// timeout from the moment the wait begins, a DATA body and each BDAT chunk by DataTimeout (and
// any silence within them by the idle timeout), the whole connection by SessionTimeout. A
// client that trickles a byte at a time gets "421 4.4.2 ... timeout exceeded" like a silent
// one. Each session has a context that ends with it; recipient checks and credential lookups
// get a deadline from it, the commit does not (see Shutdown).
//
// # Shutdown
//
// Shutdown stops accepting, ends idle sessions with 421 and lets busy ones finish the command
// in progress (DATA included). When its context ends first it cancels every session's context,
// closes every connection except those of sessions committing a message (their commit is
// finished and answered, so that a durable message is not also answered 4xx and sent again),
// and waits a bounded time (ShutdownWait) for the sessions to return, logging any that do not.
package smtpserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// Role says what a listener is for, which decides TLS and (later) authentication requirements.
type Role int

const (
	RoleMX          Role = iota // port 25: mail from other servers; STARTTLS offered
	RoleSubmission              // port 587: mail from users; STARTTLS offered
	RoleSubmissions             // port 465: mail from users over implicit TLS (RFC 8314)
)

func (r Role) String() string {
	switch r {
	case RoleMX:
		return "smtp"
	case RoleSubmission:
		return "submission"
	case RoleSubmissions:
		return "submissions"
	}
	return fmt.Sprintf("role%d", int(r))
}

// Spool stores accepted messages.
type Spool interface {
	// NewMessage starts a message; its ID is known from the start so that the Received header
	// can carry it.
	NewMessage() (Message, error)
}

// Message is one message being received.
type Message interface {
	ID() string
	// Write appends body octets, as received (CRLF line ends, dots unstuffed).
	io.Writer
	// Commit makes the message and env durable; only after it returns nil may the client be told
	// 250. env.ID, env.Size and env.Received are set by the caller.
	Commit(ctx context.Context, env *envelope.Envelope) error
	// Abort discards the message. Safe to call after Commit (it then does nothing).
	Abort()
}

// RcptChecker decides on each recipient (policy.Relay in production).
type RcptChecker interface {
	CheckRcpt(ctx context.Context, c policy.Client, rcpt smtp.Address) smtp.Reply
}

// ETRNChecker decides who may use ETRN, for which node, and how often (policy.ETRN in
// production); a positive reply means go ahead.
type ETRNChecker interface {
	CheckETRN(c policy.Client, r policy.ETRNRequest) smtp.Reply
}

// Flusher starts delivery of queued mail for a domain, and its subdomains if asked (ETRN,
// RFC 1985), and returns how many messages it made due.
type Flusher interface {
	Flush(domain string, subdomains bool) int
}

// HeaderPolicy decides whose messages get the Date: and Message-ID: fields they lack
// (policy.Headers in production).
type HeaderPolicy interface {
	AddMissingHeaders(c policy.Client) bool
}

// Options configure a Server. Zero limits take the defaults below.
type Options struct {
	// Hostname is the server's name in the greeting, EHLO reply and Received headers.
	Hostname string
	// PostmasterDomain completes "RCPT TO:<Postmaster>" (RFC 5321 §4.1.1.3).
	PostmasterDomain string
	// MaxMessageSize is the largest message accepted, in octets. Default: 10240000 (Postfix's).
	MaxMessageSize int64
	// MaxRcpts is the most recipients per message (LIMITS RCPTMAX). Default: 1000.
	MaxRcpts int
	// MaxErrors is how many error replies a session may get before it is closed with 421.
	// The count restarts when a message is queued. Default: 20.
	MaxErrors int
	// MaxRcptOvershoot is how many recipients past MaxRcpts a transaction may offer before each
	// further 452 counts as an error (Postfix's smtpd_recipient_overshoot_limit): a client that
	// ignores RCPTMAX sends to the accepted ones and the rest in another transaction, and is
	// not cut off for it. Default (0): 1000; negative: none.
	MaxRcptOvershoot int
	// IdleTimeout bounds each wait for the client (RFC 5321 §4.5.3.2.7): a whole command line
	// from the moment the wait begins, and any silence. Default: 5m.
	IdleTimeout time.Duration
	// DataTimeout bounds the reading of a whole DATA body, and of each BDAT chunk.
	// Default: 15m.
	DataTimeout time.Duration
	// SessionTimeout bounds a whole connection. Default: 30m.
	SessionTimeout time.Duration
	// ShutdownWait is how long Shutdown waits for sessions after its context ended and the
	// connections were closed (a session inside a lookup or a commit). Default: 5s.
	ShutdownWait time.Duration
	// TLS enables STARTTLS (and is required by RoleSubmissions). Nil: no TLS.
	TLS *tls.Config
	// Spool receives accepted messages. Required.
	Spool Spool
	// Rcpts decides on recipients. Required.
	Rcpts RcptChecker
	// TxContext, when set, makes the context of each transaction from the session's at MAIL:
	// the recipient checks and the commit of that transaction get a context made from it, so
	// that the wiring can keep what RCPT looked up for the commit (app: the alias expansions).
	TxContext func(ctx context.Context) context.Context
	// Flusher serves ETRN, for the requests ETRN allows; without both, ETRN is answered 458.
	Flusher Flusher
	ETRN    ETRNChecker
	// Headers decides whose messages get a missing Date: and Message-ID: (at the end of their
	// header section, see package msghdr); nil: nobody's.
	Headers HeaderPolicy
	// Authentication checks SPF and DKIM of the mail policy picks and records the results in an
	// Authentication-Results field; nil: no checks, and no field is removed.
	Authentication *Authentication
	// Screen are the checks of the smtp listener before DATA (screen.go); zero: none.
	Screen ScreenOptions
	// Filters inspect sessions and messages (milters, rspamd), in order; see filter.go.
	Filters []Filter
	// Limiter caps concurrent connections; nil means no limit.
	Limiter *policy.ConnLimiter
	// Rate limits connections, messages and recipients by their rate (rate.go); nil: no limits.
	Rate RateChecker
	// Auth enables SMTP AUTH; nil: AUTH is not offered, and the submission listeners take mail
	// like the MX one. With it, the submission listeners require AUTH before MAIL.
	Auth *AuthOptions
	// Logger gets one line per session event. Nil: discard.
	Logger *slog.Logger
	// Observer is told of connections, messages and AUTH outcomes, for metrics (observe.go).
	// Nil: nobody.
	Observer Observer
}

// Defaults for zero Options fields.
const (
	DefaultMaxMessageSize = 10240000
	DefaultMaxRcpts       = 1000
	DefaultMaxErrors      = 20
	DefaultRcptOvershoot  = 1000
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultDataTimeout    = 15 * time.Minute
	DefaultSessionTimeout = 30 * time.Minute
	DefaultShutdownWait   = 5 * time.Second
)

// Server serves SMTP sessions on any number of listeners.
type Server struct {
	// opts are what each new session starts from; SetOptions replaces them (a reload), and
	// the sessions in progress keep those they started with.
	opts atomic.Pointer[Options]
	// lis are the listeners SetListeners gave, by name: what a new session of the listener
	// of that name and role takes instead of the one ServeListener was given.
	lis atomic.Pointer[map[string]Listener]
	log *slog.Logger
	// leaf is the certificate served, for SCRAM's tls-server-end-point channel binding.
	leaf *x509.Certificate

	nextConn atomic.Uint64
	closing  atomic.Bool
	// ctx is the parent of every session's context; stop cancels it when a shutdown runs out
	// of time, and stopped says so without the context's lock (every read asks).
	ctx     context.Context
	stop    context.CancelFunc
	stopped atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	wg        sync.WaitGroup

	// chunks buffer the messages on their way to the DKIM verifier (handoff.go).
	chunks *chunkPool
	// bufs are the sessions' I/O buffers, which idle sessions give back (buffers.go).
	bufs bufferPools
	// pool holds the session goroutines waiting for a connection (pool.go).
	pool *sessionPool
}

// withDefaults returns o with each unset field (zero, or a negative number where that means
// nothing) at its default.
func (o Options) withDefaults() Options {
	// cmp.Or(max(v, 0), def): def unless v is positive.
	o.MaxMessageSize = cmp.Or(max(o.MaxMessageSize, 0), DefaultMaxMessageSize)
	o.MaxRcpts = cmp.Or(max(o.MaxRcpts, 0), DefaultMaxRcpts)
	o.MaxErrors = cmp.Or(max(o.MaxErrors, 0), DefaultMaxErrors)
	// Zero takes the default; negative means none.
	o.MaxRcptOvershoot = max(cmp.Or(o.MaxRcptOvershoot, DefaultRcptOvershoot), 0)
	o.IdleTimeout = cmp.Or(max(o.IdleTimeout, 0), DefaultIdleTimeout)
	o.DataTimeout = cmp.Or(max(o.DataTimeout, 0), DefaultDataTimeout)
	o.SessionTimeout = cmp.Or(max(o.SessionTimeout, 0), DefaultSessionTimeout)
	o.ShutdownWait = cmp.Or(max(o.ShutdownWait, 0), DefaultShutdownWait)
	o.PostmasterDomain = cmp.Or(o.PostmasterDomain, o.Hostname)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}

// New returns a Server; it serves nothing until Serve is called.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	log := opts.Logger
	var leaf *x509.Certificate
	if opts.TLS != nil && len(opts.TLS.Certificates) > 0 {
		c := opts.TLS.Certificates[0]
		if leaf = c.Leaf; leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		log:       log,
		leaf:      leaf,
		ctx:       ctx,
		stop:      stop,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		chunks:    newChunkPool(handoffChunk, handoffBudget),
		pool:      newSessionPool(),
	}
	s.opts.Store(&opts)
	return s
}

// Options returns the Options new sessions start from, defaults filled in.
func (s *Server) Options() Options { return *s.opts.Load() }

// SetListeners replaces, by name, what the listeners being served change of the Options, for
// the sessions they accept from now on. A listener's role cannot change: one given with another
// role than the served one is ignored, as are names not served.
func (s *Server) SetListeners(ls []Listener) {
	m := make(map[string]Listener, len(ls))
	for _, l := range ls {
		m[cmp.Or(l.Name, l.Role.String())] = l
	}
	s.lis.Store(&m)
}

// listener is what the listener l (as ServeListener was given it, named) is now.
func (s *Server) listener(l Listener) Listener {
	if m := s.lis.Load(); m != nil {
		if cur, ok := (*m)[l.Name]; ok && cur.Role == l.Role {
			cur.Name = l.Name
			return cur
		}
	}
	return l
}

// SetOptions replaces the Options new sessions start from (what a reload changes); sessions in
// progress keep theirs. The logger and the TLS certificate stay those New was given.
func (s *Server) SetOptions(opts Options) {
	opts = opts.withDefaults()
	opts.Logger = s.opts.Load().Logger
	s.opts.Store(&opts)
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpserver: server closed")

// ServeListener accepts connections on ln until ln fails or Shutdown is called; l says what the
// listener changes of the Options. Each connection gets a session goroutine (one an earlier
// session ended on, if one waits: pool.go), owned by the Server: Shutdown waits for it, and it
// recovers its own panics.
// A panic in the accept loop itself is returned as an error, so that the caller can shut the
// rest down in order instead of the process dying with every session.
func (s *Server) ServeListener(ln net.Listener, l Listener) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("accept loop panic", "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("smtpserver: panic in the accept loop: %v", v)
		}
	}()
	role, opts := l.Role, s.listenerOptions(l)
	l.Name = cmp.Or(l.Name, role.String())
	if role == RoleSubmissions && opts.TLS == nil {
		return errors.New("smtpserver: implicit TLS listener without a TLS config")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	var cache optionsCache
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of file descriptors or similar: wait and retry instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		// As they are now: SetOptions and SetListeners may have changed them.
		cur, curOpts := cache.get(s, l)
		sess := s.newSession(c, cur, curOpts)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			_ = c.Close() // refused at shutdown: nothing to report to
			return ErrServerClosed
		}
		s.sessions[sess] = struct{}{}
		// Under s.mu, so that no hand-off or new goroutine follows Shutdown's closing (an idle
		// goroutine takes the session without the lock).
		if !s.pool.handOff(sess) {
			s.wg.Add(1)
			go s.runSessions(sess)
		}
		s.mu.Unlock()
	}
}

// Shutdown stops accepting, asks every session to end (idle ones at once with 421, busy ones
// after their current command) and waits for them until ctx is done; then it stops the rest
// (see the package doc) and waits at most ShutdownWait more. It returns nil when every session
// ended in time, else an error wrapping ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.pool.closed) // idle session goroutines end
	}
	for ln := range s.listeners {
		_ = ln.Close() // Serve sees it closed and returns ErrServerClosed
	}
	s.mu.Unlock()

	// The waiter is owned by Shutdown and ends with the last session; it cannot panic.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	// Poke idle sessions until they are gone: a session may be just about to block in a read
	// with a fresh deadline, so one poke is not enough.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for sess := range s.sessions {
			sess.interruptIfIdle()
		}
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return s.stopSessions(ctx.Err(), done)
		case <-tick.C:
		}
	}
}

// stopSessions ends the sessions a graceful shutdown did not: it cancels their contexts (a
// lookup or a TLS handshake returns), closes their connections (a read or write returns) and
// waits at most ShutdownWait for them. A session committing a message keeps its connection: its
// commit is not cancelled either, so that the client hears the 250 of a message that is on
// disk rather than retrying it. The raw connection is closed, never the session's conn, which
// the session goroutine replaces during a TLS handshake.
func (s *Server) stopSessions(cause error, done <-chan struct{}) error {
	s.stopped.Store(true)
	s.stop()
	s.closeSessions(false)
	timer := time.NewTimer(s.Options().ShutdownWait)
	defer timer.Stop()
	select {
	case <-done:
		return cause
	case <-timer.C:
	}
	n := s.closeSessions(true)
	return fmt.Errorf("smtpserver: %d sessions still running after the shutdown wait: %w", n, cause)
}

// closeSessions closes the connection of every session, except those committing a message
// unless all is set; with all it also logs each one still running, and returns how many.
func (s *Server) closeSessions(all bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		phase := sess.phase.Load()
		if all {
			// Stuck in something that is not the network: a lookup or commit that ignores its
			// context. The process may exit under it; say which.
			sess.log.Warn("session still running at shutdown", "phase", phaseName(phase), "age", time.Since(sess.start).Round(time.Millisecond))
		}
		if all || phase != phaseCommit {
			_ = sess.raw.Close() // forced: the session ends on its own error
		}
	}
	return len(s.sessions)
}

func (s *Server) newSession(c net.Conn, l Listener, opts *Options) *session {
	id := s.nextConn.Add(1)
	var remote netip.AddrPort
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	start := time.Now()
	ctx, cancel := context.WithDeadline(s.ctx, start.Add(opts.SessionTimeout))
	sess := &session{
		srv:    s,
		opts:   opts,
		lis:    l,
		role:   l.Role,
		raw:    c,
		remote: remote,
		start:  start,
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With("conn", id, "remote", remote.Addr().Unmap().String(), "listener", l.Name),
	}
	return sess
}
