package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// session is one SMTP connection. All its fields belong to the session goroutine, except the
// ones Shutdown uses: phase, and raw, start and log, which never change. Shutdown closes raw,
// never conn: conn is replaced during the TLS handshake by the session goroutine.
type session struct {
	srv    *Server
	opts   *Options // the Server's, with what the listener changes (listener.go)
	lis    Listener
	role   Role
	raw    net.Conn // the TCP connection, whose deadlines we move
	conn   net.Conn // what we read and write: raw, or TLS over raw
	remote netip.AddrPort
	start  time.Time
	log    *slog.Logger

	// ctx is cancelled when the session ends, and for every session when a shutdown runs out of
	// time; its deadline is the end of the session time limit. Lookups and the TLS handshake
	// run under it.
	ctx    context.Context
	cancel context.CancelFunc

	// br and bw are the session's buffers, taken from the Server's pools (buffers.go). A
	// session waiting for a command with nothing buffered gives them back (readIdle): br is nil
	// during that wait, and after it when it failed (the session then ends); bw is nil from
	// then until the next reply.
	br      *bufio.Reader
	bw      *bufio.Writer
	in      primedReader // what br reads: the octets readIdle got, then conn
	wake    [wakeSize]byte
	scratch []byte // ReadLine's buffer for lines that span buffer refills

	// phase says what the session is doing, for Shutdown: only a session waiting for its next
	// command is interrupted at once (a command in progress, DATA included, is finished first),
	// and a commit in progress keeps its connection even when the shutdown runs out of time.
	phase atomic.Int32
	// readBy ends the current wait for the client as a whole: a command line, a DATA body, a
	// BDAT chunk, a TLS handshake. Input arriving a byte at a time does not move it.
	readBy time.Time
	// drain makes the close linger: the session refused the client while it may still be
	// sending, see close.
	drain bool

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
	counts    [len(counted)]int32  // commands seen, for the disconnect log line
	screen    *screening           // the lookups of a client of the smtp listener (screen.go); nil: none
	filters   *filtering           // nil without filters (filter.go)
}

// What a session is doing (session.phase).
const (
	phaseConnect int32 = iota // before the greeting: connection limits, the implicit TLS handshake
	phaseIdle                 // waiting for the next command
	phaseCommand              // running a command: lookups, AUTH, STARTTLS
	phaseData                 // receiving a message: a DATA body or a BDAT chunk
	phaseCommit               // making an accepted message durable
	phaseClosing              // after the last reply
)

func phaseName(p int32) string {
	return [...]string{"connect", "idle", "command", "data", "commit", "closing"}[p]
}

// deadlineConn moves the read and write deadlines before every I/O, so each wait for the client
// is bounded by its phase (session.readBy), the idle timeout and the session timeout.
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

// deadline is the deadline of the next read or write.
//
// A read ends at the earliest of: the end of the current phase (readBy: a command line must be
// complete within the idle timeout of the moment the wait for it began, as with Postfix's
// smtpd_per_record_deadline, and a message body within the data timeout), the idle timeout
// from now (a silent client), and the end of the session. It ends now for a session waiting
// for a command while the server shuts down, and for every session once the shutdown is out of
// time.
//
// A write ends after the idle timeout. The last words of a session (a 421, or anything after
// the shutdown ran out of time) get a short deadline of their own, so a client that stopped
// reading cannot hold the goroutine.
func (s *session) deadline(reading bool) time.Time {
	now := time.Now()
	stopped := s.srv.stopped.Load()
	if !reading {
		if s.lastWords || stopped {
			return now.Add(lastWordsTimeout)
		}
		return now.Add(s.opts.IdleTimeout)
	}
	if stopped || s.phase.Load() == phaseIdle && s.srv.closing.Load() {
		return now
	}
	d := now.Add(s.opts.IdleTimeout)
	if !s.readBy.IsZero() && s.readBy.Before(d) {
		d = s.readBy
	}
	if end := s.start.Add(s.opts.SessionTimeout); end.Before(d) {
		d = end
	}
	return d
}

// startPhase enters phase p, whose reads must all be done within d from now.
func (s *session) startPhase(p int32, d time.Duration) {
	s.phase.Store(p)
	s.readBy = time.Now().Add(d)
}

const (
	// lastWordsTimeout bounds the write of a session's final reply after a timeout or fault.
	lastWordsTimeout = 5 * time.Second
	// lookupTimeout bounds one recipient check or credential lookup (capped by the idle
	// timeout): the client is waiting for the reply, and mox gives its lookups a minute too.
	lookupTimeout = time.Minute
	// lingerTimeout and lingerMax bound how long and how much a closing session reads and
	// drops after it refused the client, see close.
	lingerTimeout = 2 * time.Second
	lingerMax     = 256 << 10
)

// lookupContext is the context of one lookup the client waits for: a recipient check, a
// credential lookup. It ends with the session.
func (s *session) lookupContext() (context.Context, context.CancelFunc) {
	return s.lookupContextFrom(s.ctx)
}

// lookupContextFrom is lookupContext made from ctx, the session's or a transaction's.
func (s *session) lookupContextFrom(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, min(s.opts.IdleTimeout, lookupTimeout))
}

func (s *session) interruptIfIdle() {
	if s.phase.Load() == phaseIdle {
		s.raw.SetReadDeadline(time.Now())
	}
}

func (s *session) hostname() string { return s.opts.Hostname }

// serve runs the session to its end. It is the session's only recover: a panic is logged with its
// stack and answered with 421, and no other session notices.
func (s *session) serve() {
	s.conn = deadlineConn{Conn: s.raw, s: s}
	s.in.r = s.conn
	s.br = s.srv.bufs.reader(&s.in)
	s.bw = s.srv.bufs.writer(s.conn)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("session panic", "panic", v, "stack", string(debug.Stack()))
			s.farewell()
		}
		s.closeFilters()
		s.cancel()
		s.close()
		s.logDisconnect()
		s.srv.bufs.release(s)
	}()

	s.obs().Connected(s.listenerName())
	if lim := s.opts.Limiter; lim != nil {
		kind := policy.ConnMX
		if s.role != RoleMX {
			kind = policy.ConnSubmission // the users' ports get their share of a busy server
		}
		release, reply, ok := lim.Acquire(s.remote.Addr(), kind)
		if !ok {
			s.obs().Refused(s.listenerName(), RefusedLimit)
			s.refuseConnection(reply)
			return
		}
		defer release()
	}
	if !s.rateConnect() {
		return
	}
	s.obs().SessionStarted(s.listenerName())
	defer s.obs().SessionEnded(s.listenerName())
	s.log.Info("connect")
	if !s.screenConnect() {
		return
	}

	if s.role == RoleSubmissions {
		if !s.handshake() {
			return
		}
	}
	if !s.openFilters() {
		return
	}
	s.reply(smtp.R(smtp.CodeReady, "", s.hostname()+" ESMTP tern"))
	s.loop()
	s.abortTx()
	s.flush()
}

// close ends the connection. After a refusal that ends the session (a bare LF, too many
// errors) the client may still be sending: a whole file fed to nc, a pipelined group. Closing
// with unread input makes the kernel answer with a reset, which can destroy our last reply
// before the client has read it; so the sending side is shut first and the input read and
// dropped for a moment (the "lingering close" of HTTP servers), unless the server is stopping.
//
// Under TLS a close_notify alert goes first (RFC 8446 §6.1): without it the client cannot tell
// our close from a truncation by an attacker, and OpenSSL reports "unexpected eof while
// reading". It is written as last words, under their short deadline, so that a client that
// stopped reading cannot hold the session.
func (s *session) close() {
	s.phase.Store(phaseClosing)
	if tc, ok := s.conn.(*tls.Conn); ok {
		s.lastWords = true
		_ = tc.CloseWrite() // only sends the alert; the TCP connection is ours to shut below
	}
	if cw, ok := s.raw.(interface{ CloseWrite() error }); ok && s.drain && !s.srv.stopped.Load() && cw.CloseWrite() == nil {
		s.raw.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, s.raw, lingerMax) // lingering: whatever the client still sends is dropped
	}
	_ = s.raw.Close() // the session is over: nobody to tell
}

// farewell tries to tell the client about an internal error after a panic. The session's state
// is suspect by now, so this may panic too; that is swallowed, the connection closes anyway.
func (s *session) farewell() {
	defer func() { _ = recover() }()
	s.abortTx()
	s.lastWords = true
	if s.bw != nil {
		s.bw.Reset(s.conn) // drop half-written replies
	}
	s.reply(smtp.R(smtp.CodeUnavailable, smtp.EnhSystemOther, s.hostname()+" Error: internal server error"))
	s.flush()
}

func (s *session) loop() {
	for !s.quit {
		if s.srv.closing.Load() {
			// Commands the client pipelined behind the one that just finished are not started.
			s.log.Info("shutting down", "phase", phaseName(s.phase.Load()))
			s.lastWords = true
			s.closeWith(s.replyShuttingDown())
			return
		}
		if !s.lineWaiting() && !s.flush() {
			return
		}
		line, err := s.readLine(true)
		if err != nil {
			if !s.lineError(err) {
				return
			}
		} else {
			s.command(string(line))
		}
		if s.errors >= s.opts.MaxErrors && !s.quit {
			s.log.Info("too many errors", "errors", s.errors)
			s.refuse(smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, s.hostname()+" Error: too many errors"))
		}
	}
}

// lineWaiting reports whether a whole command line is buffered, to be run without waiting for
// the client. PIPELINING (RFC 2920 §3.1): the replies to a group may go out together, so they
// are held while commands of the group are waiting; but never while we wait for the client, or
// a client that sent part of its next line would wait for replies that are ready.
func (s *session) lineWaiting() bool {
	if s.br == nil {
		return false
	}
	buf, _ := s.br.Peek(s.br.Buffered()) // never reads: no more than is buffered
	return bytes.IndexByte(buf, '\n') >= 0
}

// readLine reads a command line (idle: the session is between commands, so a shutdown may
// interrupt the wait) or an AUTH response. The whole line must arrive within the idle timeout
// of the moment the wait begins.
func (s *session) readLine(idle bool) ([]byte, error) {
	p := phaseCommand
	if idle {
		p = phaseIdle
	}
	s.startPhase(p, s.opts.IdleTimeout)
	if idle {
		if err := s.readIdle(); err != nil {
			return nil, err
		}
	}
	line, err := smtp.ReadLine(s.br, MaxAuthLine, &s.scratch)
	if err == nil {
		// A failed wait keeps its phase: the session ends or refuses the line, and its log
		// line says what it was waiting for.
		s.phase.Store(phaseCommand)
	}
	return line, err
}

// lineError answers a failed command read; false ends the session.
//
// A bare LF ends the session with 521, as Postfix does with smtpd_forbid_bare_newline = yes
// (there with 550): the line reader split the input at the LF, but a proxy in front that
// splits on CRLF only saw one line, so the text after the LF must never run as a command (a
// command desync); and a file with Unix line ends fed to nc gets one clear answer naming the
// fix instead of one error per line and a wait for the idle timeout.
//
// A bare CR, or a NUL (see command), costs only that line: the line still ends at the same
// CRLF for us and for a proxy that splits on CRLF, and whatever another peer makes of the CR or
// NUL, we run none of the line, so nothing is desynchronised; the error budget ends a client
// that sends nothing else. Refusing the line keeps both out of the parser, the logs and the
// Received header (and away from C tools after us that would stop reading at a NUL).
func (s *session) lineError(err error) bool {
	switch {
	case errors.Is(err, smtp.ErrLineTooLong):
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: line too long"))
	case errors.Is(err, smtp.ErrBareLF):
		s.log.Info("bare LF in a command line, closing")
		s.refuse(smtp.R(smtp.CodeNoMail, smtp.EnhSyntax, s.hostname()+" Error: bare <LF> received; lines must end with <CR><LF> (nc -C adds them)"))
		return false
	case errors.Is(err, smtp.ErrBareCR):
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: bare <CR> received"))
	default:
		s.ioError(err)
		return false
	}
	return true
}

// replyShuttingDown is the 421 of a session the server ends because it is stopping.
func (s *session) replyShuttingDown() smtp.Reply {
	return smtp.R(smtp.CodeUnavailable, smtp.EnhNotAccepting, s.hostname()+" Service shutting down, closing connection")
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
	s.lastWords = true
	if s.srv.closing.Load() {
		// Shutdown interrupted the wait by moving the read deadline: that is no timeout of the
		// client's, and the log says what happened (as loop does for a session between commands).
		s.log.Info("shutting down", "phase", phaseName(s.phase.Load()))
		s.closeWith(s.replyShuttingDown())
		return
	}
	r := smtp.R(smtp.CodeUnavailable, smtp.EnhBadConnection, s.hostname()+" Error: timeout exceeded")
	if !time.Now().Before(s.start.Add(s.opts.SessionTimeout)) {
		r = smtp.R(smtp.CodeUnavailable, smtp.EnhBadConnection, s.hostname()+" Error: session time limit exceeded")
	}
	s.log.Info("timeout", "reason", r.Text, "phase", phaseName(s.phase.Load()))
	s.closeWith(r)
}

// reply queues r for the client; error replies count towards MaxErrors.
func (s *session) reply(r smtp.Reply) {
	if r.Code >= 400 {
		s.errors++
	}
	s.replyUncounted(r)
}

// replyUncounted queues r without counting it as an error.
func (s *session) replyUncounted(r smtp.Reply) {
	if s.bw == nil { // given back while the session waited (readIdle)
		s.bw = s.srv.bufs.writer(s.conn)
	}
	// Formatted in the writer's free space: no copy, and nothing kept by the session.
	s.bw.Write(r.Append(s.bw.AvailableBuffer())) // an error here sticks in bw and is seen by flush
}

// closeWith sends r and ends the session once it is flushed.
func (s *session) closeWith(r smtp.Reply) {
	s.reply(r)
	s.quit = true
}

// refuse ends the session with r while the client may still be sending: the close lingers.
func (s *session) refuse(r smtp.Reply) {
	s.lastWords = true
	s.drain = true
	s.closeWith(r)
}

// hasNUL reports whether a command line holds a NUL octet.
func hasNUL(line string) bool { return strings.IndexByte(line, 0) >= 0 }

// flush sends queued replies; false (and quit) when the client is gone.
func (s *session) flush() bool {
	if s.bw == nil {
		return true // no reply since the last flush
	}
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

// counted are the commands the disconnect line counts, in its order; any other verb counts as
// unknown when it is unknown, and not at all when it is known (AUTH, HELP, EXPN).
var counted = [...]string{"ehlo", "helo", "starttls", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy", "etrn", "quit", "unknown"}

// countUnknown is the index of "unknown" in counted.
const countUnknown = len(counted) - 1

// count counts a command by its verb (upper case), or as unknown.
func (s *session) count(verb string) {
	for i, c := range counted[:countUnknown] {
		if len(c) == len(verb) && strings.EqualFold(c, verb) {
			s.counts[i]++
			return
		}
	}
}

func (s *session) logDisconnect() {
	args := []any{"duration", time.Since(s.start).Round(time.Millisecond), "messages", s.messages}
	for i, verb := range counted {
		if n := s.counts[i]; n > 0 {
			args = append(args, verb, n)
		}
	}
	s.log.Info("disconnect", args...)
}
