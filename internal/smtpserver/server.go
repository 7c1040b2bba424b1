// Package smtpserver runs the SMTP listeners and the per-connection session state machine
// (RFC 5321 with PIPELINING, SIZE, 8BITMIME, BINARYMIME, CHUNKING, DSN, SMTPUTF8, ETRN, LIMITS,
// ENHANCEDSTATUSCODES and STARTTLS).
//
// A session reads bounded lines, parses them with package smtp, asks policy what to accept and
// hands each accepted message to a Spool, answering "250 ... queued as ID" only after the spool
// says the message is durable. Every fault is answered with a reply that carries an enhanced
// status code; a panic in one session is recovered, logged and answered with 421 without
// touching any other session. Decisions (relay control, connection limits) live in package
// policy, storage in the Spool: neither is decided here.
package smtpserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
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
	CheckETRN(c policy.Client, node string) smtp.Reply
}

// Flusher starts delivery of queued mail for a domain, and its subdomains if asked (ETRN,
// RFC 1985), and returns how many messages it made due.
type Flusher interface {
	Flush(domain string, subdomains bool) int
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
	// IdleTimeout bounds each wait for the client (RFC 5321 §4.5.3.2.7). Default: 5m.
	IdleTimeout time.Duration
	// SessionTimeout bounds a whole connection. Default: 30m.
	SessionTimeout time.Duration
	// TLS enables STARTTLS (and is required by RoleSubmissions). Nil: no TLS.
	TLS *tls.Config
	// Spool receives accepted messages. Required.
	Spool Spool
	// Rcpts decides on recipients. Required.
	Rcpts RcptChecker
	// Flusher serves ETRN, for the requests ETRN allows; without both, ETRN is answered 458.
	Flusher Flusher
	ETRN    ETRNChecker
	// Limiter caps concurrent connections; nil means no limit.
	Limiter *policy.ConnLimiter
	// Auth enables SMTP AUTH; nil: AUTH is not offered, and the submission listeners take mail
	// like the MX one. With it, the submission listeners require AUTH before MAIL.
	Auth *AuthOptions
	// Logger gets one line per session event. Nil: discard.
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	DefaultMaxMessageSize = 10240000
	DefaultMaxRcpts       = 1000
	DefaultMaxErrors      = 20
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultSessionTimeout = 30 * time.Minute
)

// Server serves SMTP sessions on any number of listeners.
type Server struct {
	opts Options
	log  *slog.Logger
	// leaf is the certificate served, for SCRAM's tls-server-end-point channel binding.
	leaf *x509.Certificate

	nextConn atomic.Uint64
	closing  atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	wg        sync.WaitGroup
}

// New returns a Server; it serves nothing until Serve is called.
func New(opts Options) *Server {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxRcpts <= 0 {
		opts.MaxRcpts = DefaultMaxRcpts
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = DefaultMaxErrors
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.PostmasterDomain == "" {
		opts.PostmasterDomain = opts.Hostname
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var leaf *x509.Certificate
	if opts.TLS != nil && len(opts.TLS.Certificates) > 0 {
		c := opts.TLS.Certificates[0]
		if leaf = c.Leaf; leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
	}
	return &Server{
		opts:      opts,
		log:       log,
		leaf:      leaf,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpserver: server closed")

// Serve accepts connections on ln until ln fails or Shutdown is called.
func (s *Server) Serve(ln net.Listener, role Role) error {
	if role == RoleSubmissions && s.opts.TLS == nil {
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
		sess := s.newSession(c, role)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.sessions, sess)
				s.mu.Unlock()
			}()
			sess.serve()
		}()
	}
}

// Shutdown stops accepting, asks every session to end (idle ones at once with 421, busy ones
// after their current command) and waits for them until ctx is done; then it closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()

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
			s.mu.Lock()
			for sess := range s.sessions {
				sess.conn.Close()
			}
			s.mu.Unlock()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Server) newSession(c net.Conn, role Role) *session {
	id := s.nextConn.Add(1)
	var remote netip.AddrPort
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	sess := &session{
		srv:    s,
		role:   role,
		raw:    c,
		remote: remote,
		start:  time.Now(),
		log:    s.log.With("conn", id, "remote", remote.Addr().Unmap().String(), "listener", role.String()),
	}
	return sess
}
