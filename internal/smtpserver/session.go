package smtpserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// session is one SMTP connection. All its fields belong to the session goroutine, except waiting
// (read by Shutdown) and conn/raw, whose deadline methods are safe for concurrent use.
type session struct {
	srv    *Server
	role   Role
	raw    net.Conn // the TCP connection, whose deadlines we move
	conn   net.Conn // what we read and write: raw, or TLS over raw
	remote netip.AddrPort
	start  time.Time
	log    *slog.Logger

	br      *bufio.Reader
	bw      *bufio.Writer
	out     []byte // reply being formatted
	scratch []byte // ReadLine's buffer for lines that span buffer refills

	// waiting is set while the session blocks for the next command, the only time Shutdown may
	// interrupt it (a command in progress, DATA included, is finished first).
	waiting atomic.Bool

	tls       *tls.ConnectionState // set once TLS is up
	helo      string               // HELO/EHLO argument; "" until the client greets
	user      string               // the authenticated account; "" before AUTH
	authMech  string               // the mechanism it authenticated with
	esmtp     bool                 // the client used EHLO
	tx        *transaction         // current mail transaction; nil outside MAIL..end of data
	errors    int                  // error replies since the last queued message
	quit      bool                 // end the session after the pending replies are flushed
	lastWords bool                 // the final reply after a timeout or fault is being sent
	messages  int                  // messages queued in this session
	counts    map[string]int       // commands seen, for the disconnect log line
}

// deadlineConn moves the read and write deadlines before every I/O, so each wait for the client
// is bounded by the idle timeout and the whole session by the session timeout.
type deadlineConn struct {
	net.Conn
	s *session
}

func (d deadlineConn) Read(p []byte) (int, error) {
	d.Conn.SetReadDeadline(d.s.deadline(true))
	return d.Conn.Read(p)
}

func (d deadlineConn) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(d.s.deadline(false))
	return d.Conn.Write(p)
}

// deadline is now plus the idle timeout; for reads capped by the session's end, and now for a
// session that is waiting for a command while the server shuts down. The last words of a
// session (a 421) get a short deadline of their own, so a client that stopped reading cannot
// hold the goroutine.
func (s *session) deadline(reading bool) time.Time {
	now := time.Now()
	if !reading {
		if s.lastWords {
			return now.Add(lastWordsTimeout)
		}
		return now.Add(s.srv.opts.IdleTimeout)
	}
	if s.waiting.Load() && s.srv.closing.Load() {
		return now
	}
	d := now.Add(s.srv.opts.IdleTimeout)
	if end := s.start.Add(s.srv.opts.SessionTimeout); end.Before(d) {
		d = end
	}
	return d
}

// lastWordsTimeout bounds the write of a session's final reply after a timeout or fault.
const lastWordsTimeout = 5 * time.Second

func (s *session) interruptIfIdle() {
	if s.waiting.Load() {
		s.raw.SetReadDeadline(time.Now())
	}
}

func (s *session) hostname() string { return s.srv.opts.Hostname }

// serve runs the session to its end. It is the session's only recover: a panic is logged with its
// stack and answered with 421, and no other session notices.
func (s *session) serve() {
	s.conn = deadlineConn{Conn: s.raw, s: s}
	s.br = bufio.NewReaderSize(s.conn, 4096)
	s.bw = bufio.NewWriterSize(s.conn, 4096)
	s.counts = make(map[string]int)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("session panic", "panic", v, "stack", string(debug.Stack()))
			s.farewell()
		}
		s.raw.Close()
		s.logDisconnect()
	}()

	if lim := s.srv.opts.Limiter; lim != nil {
		kind := policy.ConnMX
		if s.role != RoleMX {
			kind = policy.ConnSubmission // the users' ports get their share of a busy server
		}
		release, reply, ok := lim.Acquire(s.remote.Addr(), kind)
		if !ok {
			s.log.Info("connection refused", "code", reply.Code, "reason", reply.Text)
			// On the implicit TLS port the client speaks TLS first: the 421 must come inside it.
			if s.role == RoleSubmissions && !s.handshake() {
				return
			}
			s.reply(reply)
			s.flush()
			return
		}
		defer release()
	}
	s.log.Info("connect")

	if s.role == RoleSubmissions {
		if !s.handshake() {
			return
		}
	}
	s.reply(smtp.R(smtp.CodeReady, "", s.hostname()+" ESMTP tern"))
	s.loop()
	s.abortTx()
	s.flush()
}

// farewell tries to tell the client about an internal error after a panic. The session's state
// is suspect by now, so this may panic too; that is swallowed, the connection closes anyway.
func (s *session) farewell() {
	defer func() { recover() }()
	s.abortTx()
	s.lastWords = true
	s.bw.Reset(s.conn) // drop half-written replies
	s.reply(smtp.R(smtp.CodeUnavailable, smtp.EnhSystemOther, s.hostname()+" Error: internal server error"))
	s.flush()
}

func (s *session) loop() {
	for !s.quit {
		if s.br.Buffered() == 0 {
			// PIPELINING (RFC 2920): replies go out when the client has nothing more queued, so
			// a pipelined group gets its replies in one write, in order.
			if !s.flush() {
				return
			}
		}
		s.waiting.Store(true)
		line, err := smtp.ReadLine(s.br, MaxAuthLine, &s.scratch)
		s.waiting.Store(false)
		if err != nil {
			if !s.lineError(err) {
				return
			}
		} else {
			s.command(string(line))
		}
		if s.errors >= s.srv.opts.MaxErrors && !s.quit {
			s.log.Info("too many errors", "errors", s.errors)
			s.closeWith(smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, s.hostname()+" Error: too many errors"))
		}
	}
}

// lineError answers a failed command read; false ends the session.
func (s *session) lineError(err error) bool {
	switch {
	case errors.Is(err, smtp.ErrLineTooLong):
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: line too long"))
	case errors.Is(err, smtp.ErrBareLF):
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: bare <LF> received; lines must end with <CR><LF>"))
	case errors.Is(err, smtp.ErrBareCR):
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: bare <CR> received"))
	default:
		s.ioError(err)
		return false
	}
	return true
}

// ioError ends the session after a failed read or write: a timeout or shutdown is answered with
// 421 (RFC 5321 §4.5.3.2), a vanished client is only logged.
func (s *session) ioError(err error) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
			s.log.Info("connection error", "err", err)
		}
		s.quit = true
		return
	}
	var r smtp.Reply
	switch {
	case s.srv.closing.Load():
		r = smtp.R(smtp.CodeUnavailable, smtp.EnhNotAccepting, s.hostname()+" Service shutting down, closing connection")
	case !time.Now().Before(s.start.Add(s.srv.opts.SessionTimeout)):
		r = smtp.R(smtp.CodeUnavailable, smtp.EnhBadConnection, s.hostname()+" Error: session time limit exceeded")
	default:
		r = smtp.R(smtp.CodeUnavailable, smtp.EnhBadConnection, s.hostname()+" Error: timeout exceeded")
	}
	s.log.Info("timeout", "reason", r.Text)
	s.lastWords = true
	s.closeWith(r)
}

// reply queues r for the client; error replies count towards MaxErrors.
func (s *session) reply(r smtp.Reply) {
	if r.Code >= 400 {
		s.errors++
	}
	s.out = r.Append(s.out[:0])
	s.bw.Write(s.out) // an error here sticks in bw and is seen by flush
}

// closeWith sends r and ends the session once it is flushed.
func (s *session) closeWith(r smtp.Reply) {
	s.reply(r)
	s.quit = true
}

// flush sends queued replies; false (and quit) when the client is gone.
func (s *session) flush() bool {
	if err := s.bw.Flush(); err != nil {
		if !s.quit {
			s.log.Info("write failed", "err", err)
		}
		s.quit = true
		return false
	}
	return true
}

// client describes this session to policy.
func (s *session) client() policy.Client {
	return policy.Client{IP: s.remote.Addr().Unmap(), Authenticated: s.user != "", User: s.user}
}

func (s *session) logDisconnect() {
	args := []any{"duration", time.Since(s.start).Round(time.Millisecond), "messages", s.messages}
	for _, verb := range []string{"ehlo", "helo", "starttls", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy", "etrn", "quit", "unknown"} {
		if n := s.counts[verb]; n > 0 {
			args = append(args, verb, n)
		}
	}
	s.log.Info("disconnect", args...)
}
