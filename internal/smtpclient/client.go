// Package smtpclient is tern's SMTP client: one connection to one server, driven step by step
// (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA or BDAT, RSET, QUIT) or one transaction at a
// time with Send, which pipelines MAIL, the RCPTs and DATA when the server offers PIPELINING
// (RFC 2920). tern send uses it now; remote delivery and the load generator are meant to.
// With Options.LMTP it speaks LMTP (RFC 2033) to a mailbox server instead: LHLO, and SendLMTP,
// which reads one reply per recipient after the message (lmtp.go).
//
// # Guarantees
//
// Every reply is read with bounds on its line length, its number of lines and its total size
// (Options.MaxReply*), and every step has a deadline (Options.*Timeout, and the context's).
// Message text goes out through smtp.DotWriter, so nothing in a message can end the data early;
// if the message cannot be read to its end, the connection is dropped rather than the data
// ended, so the server discards the partial message. After STARTTLS, anything the server sent
// before the handshake is refused, and everything learned before it (the EHLO keywords) is
// forgotten (RFC 3207 §4.2).
//
// # Failures
//
// Every failure is an *Error: the command, the server's reply if there was one, and a
// Permanent/Temporary classification. A network error, a timeout or a malformed reply also
// breaks the client: the connection's state is unknown, so every later command fails at once
// with ErrBroken, and only Close (or Quit, which then just closes) is useful.
//
// # Tracing
//
// Options.Trace sees every line sent and received, in order (with PIPELINING, a batch of
// commands before their replies). What the client sends during AUTH is redacted unless
// Options.TraceSecrets is set; message text is traced only with Options.TraceData.
//
// A Client is not safe for concurrent use; the package keeps no global state.
package smtpclient

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// Direction says which way a traced line went.
type Direction int

const (
	Sent     Direction = iota + 1 // from the client to the server
	Received                      // from the server to the client
)

func (d Direction) String() string {
	switch d {
	case Sent:
		return "sent"
	case Received:
		return "received"
	}
	return "unknown"
}

// TraceFunc is called with every line sent or received, without its CRLF; tls tells whether
// the line went over TLS. It is called from the goroutine that runs the command.
type TraceFunc func(dir Direction, tls bool, line string)

// Dialer opens connections; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Default timeouts (RFC 5321 §4.5.3.2: five minutes for a command's reply, ten for the reply
// to the end of the message).
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
)

// Options configure a Client. The zero value works: defaults are noted per field.
type Options struct {
	// LocalName is what EHLO and HELO send: the client's host name, or an address literal.
	// Default: "localhost".
	LocalName string
	// TLSConfig is used by implicit TLS and STARTTLS. Dial fills in ServerName from the address
	// when it is empty; New needs it set for TLS. Default (Dial only): verify the server's
	// certificate against the system roots for the host dialed.
	TLSConfig *tls.Config
	// ImplicitTLS starts TLS as soon as the connection is open, before the greeting (the
	// submissions port, RFC 8314 §3.3).
	ImplicitTLS bool
	// Dialer opens the connection for Dial. Default: a net.Dialer.
	Dialer Dialer
	// ConnectTimeout bounds dialing and the implicit TLS handshake. Default: 30 seconds.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each command (its write and its reply), the greeting, a STARTTLS
	// handshake, and each write of message text. Default: 5 minutes.
	CommandTimeout time.Duration
	// DataTimeout bounds the wait for the reply to the end of the message. Default: 10 minutes.
	DataTimeout time.Duration
	// NoPipelining sends one command at a time even when the server offers PIPELINING.
	NoPipelining bool
	// LMTP speaks LMTP (RFC 2033) instead of SMTP: Hello sends LHLO, and a message goes out
	// with SendLMTP, which reads one reply per recipient after the data (see lmtp.go).
	LMTP bool
	// Chunking makes Send use BDAT (RFC 3030) instead of DATA when the server offers CHUNKING.
	Chunking bool
	// ChunkSize is the size of a BDAT chunk. Default: 1 MiB.
	ChunkSize int
	// NormalizeLineEndings turns bare LF and CR in a message into CRLF. Without it, DATA refuses
	// a message with one (and drops the connection, so nothing is delivered), and BDAT sends
	// the octets as they are.
	NormalizeLineEndings bool
	// Trace, if set, sees every line sent and received.
	Trace TraceFunc
	// TraceSecrets passes the client's AUTH lines to Trace as they are sent. Default: they are
	// redacted, since they carry passwords or what an attacker can attack a password with.
	TraceSecrets bool
	// TraceData passes message text to Trace, line by line. Default: only commands and replies.
	TraceData bool
	// MaxReplyLine, MaxReplyLines and MaxReplyBytes bound each reply: a line's length (CRLF
	// included), its number of lines, and its size. Defaults: DefaultMaxReply*.
	MaxReplyLine, MaxReplyLines, MaxReplyBytes int
}

// withDefaults returns o with each unset field (zero, or a negative number) at its default.
func (o Options) withDefaults() Options {
	// cmp.Or(max(v, 0), def): def unless v is positive.
	o.LocalName = cmp.Or(o.LocalName, "localhost")
	o.ConnectTimeout = cmp.Or(max(o.ConnectTimeout, 0), DefaultConnectTimeout)
	o.CommandTimeout = cmp.Or(max(o.CommandTimeout, 0), DefaultCommandTimeout)
	o.DataTimeout = cmp.Or(max(o.DataTimeout, 0), DefaultDataTimeout)
	o.ChunkSize = cmp.Or(max(o.ChunkSize, 0), 1<<20)
	o.MaxReplyLine = cmp.Or(max(o.MaxReplyLine, 0), DefaultMaxReplyLine)
	o.MaxReplyLines = cmp.Or(max(o.MaxReplyLines, 0), DefaultMaxReplyLines)
	o.MaxReplyBytes = cmp.Or(max(o.MaxReplyBytes, 0), DefaultMaxReplyBytes)
	return o
}

// Client is one SMTP connection.
type Client struct {
	opts Options

	conn     net.Conn             // the connection: a *tls.Conn once TLS is on
	tlsState *tls.ConnectionState // nil without TLS
	br       *bufio.Reader
	bw       *bufio.Writer // writes through deadlineWriter to conn
	scratch  []byte        // ReadLine's buffer for long lines

	greeting smtp.Reply
	ext      Extensions
	esmtp    bool // EHLO was accepted (HELO otherwise)
	greeted  bool // EHLO or HELO done since the connection or TLS began
	authed   bool // AUTH succeeded
	inTx     bool // MAIL was accepted and the transaction is not over

	// broken is set by the first failure that leaves the connection in an unknown state.
	broken *Error

	// Deadlines: the current step's timeout, refreshed on every write, unless the step's
	// context was cancelled (which sets a deadline in the past). The lock also guards changes
	// of conn, which a context's AfterFunc may use from its own goroutine.
	dl struct {
		sync.Mutex
		timeout   time.Duration
		ctxDL     time.Time // the context's deadline, or zero
		cancelled error     // the context's error once it is done
		byCtx     bool      // the deadline set is the context's
	}
}

// Dial connects to addr ("host:port"), starts TLS at once with ImplicitTLS, and reads the
// greeting. A greeting other than 220 is returned as an *Error (and the connection closed).
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &Error{Command: CmdConnect, Err: err}
	}
	if opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	} else if opts.TLSConfig.ServerName == "" {
		opts.TLSConfig = opts.TLSConfig.Clone()
		opts.TLSConfig.ServerName = host
	}
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	dctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, &Error{Command: CmdConnect, Err: err}
	}
	return New(ctx, conn, opts)
}

// New runs the client on an open connection, which it then owns: it starts TLS with
// ImplicitTLS, reads the greeting, and closes conn on failure.
func New(ctx context.Context, conn net.Conn, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	c := &Client{opts: opts, conn: conn}
	c.br = bufio.NewReader(conn)
	c.bw = bufio.NewWriter(deadlineWriter{c})
	if opts.ImplicitTLS {
		if err := c.handshake(ctx, CmdConnect, opts.ConnectTimeout); err != nil {
			_ = conn.Close() // the handshake error is the one to report
			return nil, err
		}
	}
	done := c.begin(ctx, c.opts.CommandTimeout)
	r, err := c.readReply(CmdConnect)
	done()
	if err != nil {
		_ = c.conn.Close() // the greeting error is the one to report
		return nil, err
	}
	c.greeting = r
	if r.Code != smtp.CodeReady {
		// RFC 5321 §3.1: a 554 greeting means no service; 421, try later. Either way, the
		// session is over: close without a QUIT the server may not read.
		_ = c.conn.Close()
		return nil, replyError(CmdConnect, r)
	}
	return c, nil
}

// Greeting is the server's 220 reply.
func (c *Client) Greeting() smtp.Reply { return c.greeting }

// Extensions are what the last EHLO reply advertised (nothing after HELO, or after STARTTLS
// until the next EHLO).
func (c *Client) Extensions() Extensions { return c.ext }

// ESMTP reports whether the server took EHLO (false after a fallback to HELO).
func (c *Client) ESMTP() bool { return c.esmtp }

// TLS returns the connection's TLS state; ok is false without TLS.
func (c *Client) TLS() (state tls.ConnectionState, ok bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// LocalAddr is the connection's local address (the sending IP of a TLS report, RFC 8460).
func (c *Client) LocalAddr() net.Addr {
	c.dl.Lock()
	defer c.dl.Unlock()
	return c.conn.LocalAddr()
}

// Authenticated reports whether AUTH succeeded.
func (c *Client) Authenticated() bool { return c.authed }

// Close closes the connection without QUIT.
func (c *Client) Close() error {
	if c.broken == nil {
		c.broken = &Error{Err: ErrBroken}
	}
	return c.conn.Close()
}

// Hello sends EHLO, and HELO if the server refuses EHLO with a 5xx (RFC 5321 §3.2), and records
// the extensions. With Options.LMTP it sends LHLO instead, without fallback. Commands that
// need it send it by themselves when it has not been sent since the connection (or TLS) began.
func (c *Client) Hello(ctx context.Context) error {
	if c.opts.LMTP {
		return c.lhlo(ctx)
	}
	if err := c.usable(CmdEHLO); err != nil {
		return err
	}
	c.ext, c.esmtp, c.greeted = Extensions{}, false, false
	r, err := c.cmd(ctx, CmdEHLO, "EHLO "+c.opts.LocalName)
	if err != nil {
		return err
	}
	if r.Code == smtp.CodeOK {
		c.ext = parseExtensions(r.Text)
		c.esmtp, c.greeted = true, true
		return nil
	}
	if r.Code < 500 {
		return replyError(CmdEHLO, r)
	}
	r, err = c.cmd(ctx, CmdHELO, "HELO "+c.opts.LocalName)
	if err != nil {
		return err
	}
	if r.Code != smtp.CodeOK {
		return replyError(CmdHELO, r)
	}
	c.greeted = true
	return nil
}

// ensureHello sends EHLO if the session needs one.
func (c *Client) ensureHello(ctx context.Context) error {
	if c.greeted {
		return nil
	}
	return c.Hello(ctx)
}

// Reset sends RSET, ending any transaction.
func (c *Client) Reset(ctx context.Context) error {
	if err := c.usable(CmdRSET); err != nil {
		return err
	}
	r, err := c.cmd(ctx, CmdRSET, "RSET")
	if err != nil {
		return err
	}
	if r.Code != smtp.CodeOK {
		return replyError(CmdRSET, r)
	}
	c.inTx = false
	return nil
}

// Quit sends QUIT, waits for the reply and closes the connection. On a broken client it only
// closes. The error is for the record: the session is over either way.
func (c *Client) Quit(ctx context.Context) error {
	if c.broken != nil {
		_ = c.conn.Close() // already broken: its error was reported
		return nil
	}
	r, err := c.cmd(ctx, CmdQUIT, "QUIT")
	_ = c.Close() // the server may have closed first: nothing to learn from how closing went
	switch {
	case err != nil:
		return err
	case r.Code != smtp.CodeClosing:
		return replyError(CmdQUIT, r)
	}
	return nil
}

// usable returns ErrBroken (as an *Error for cmd) once the connection is out of step.
func (c *Client) usable(cmd string) error {
	if c.broken == nil {
		return nil
	}
	e := *c.broken
	e.Command = cmd
	e.Permanent = false
	if !errors.Is(e.Err, ErrBroken) {
		e.Err = errors.Join(ErrBroken, e.Err)
	}
	return &e
}

// breakOn records a failure that leaves the connection in an unknown state and returns it as
// the Error of cmd. A cancelled context is reported as such, not as the timeout it caused.
func (c *Client) breakOn(cmd string, err error) *Error {
	c.dl.Lock()
	cancelled, byCtx := c.dl.cancelled, c.dl.byCtx
	c.dl.Unlock()
	if cancelled == nil && byCtx && errors.Is(err, os.ErrDeadlineExceeded) {
		cancelled = context.DeadlineExceeded // the timer of ctx has not fired yet
	}
	if cancelled != nil {
		err = errors.Join(cancelled, err)
	}
	e := &Error{Command: cmd, Err: err}
	if c.broken == nil {
		c.broken = e
	}
	_ = c.conn.Close() // e is the error to report
	return e
}

// begin sets the deadline of a step: now plus timeout, or the context's deadline if sooner;
// cancelling ctx sets a deadline in the past, which fails the read or write in progress. The
// returned func ends the step.
func (c *Client) begin(ctx context.Context, timeout time.Duration) (done func()) {
	c.dl.Lock()
	c.dl.timeout = timeout
	c.dl.ctxDL, _ = ctx.Deadline()
	c.dl.cancelled = ctx.Err()
	c.dl.Unlock()
	c.refreshDeadline(true)
	stop := context.AfterFunc(ctx, func() {
		c.dl.Lock()
		c.dl.cancelled = ctx.Err()
		c.conn.SetDeadline(time.Unix(1, 0))
		c.dl.Unlock()
	})
	return func() { stop() }
}

// refreshDeadline restarts the step's timeout for writes (and reads too, with both).
func (c *Client) refreshDeadline(both bool) {
	c.dl.Lock()
	defer c.dl.Unlock()
	if c.dl.cancelled != nil {
		c.conn.SetDeadline(time.Unix(1, 0))
		return
	}
	t := time.Now().Add(c.dl.timeout)
	c.dl.byCtx = !c.dl.ctxDL.IsZero() && c.dl.ctxDL.Before(t)
	if c.dl.byCtx {
		t = c.dl.ctxDL
	}
	if both {
		c.conn.SetDeadline(t)
	} else {
		c.conn.SetWriteDeadline(t)
	}
}

// setTimeout changes the current step's timeout (for the reply to the end of the data) and
// restarts it.
func (c *Client) setTimeout(d time.Duration) {
	c.dl.Lock()
	c.dl.timeout = d
	c.dl.Unlock()
	c.refreshDeadline(true)
}

// deadlineWriter writes to the current connection, restarting the write deadline for each
// write, so that a large message has the timeout per write, not in total (RFC 5321
// §4.5.3.2.5: the timeout is per block of data).
type deadlineWriter struct{ c *Client }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.refreshDeadline(false)
	return w.c.conn.Write(p)
}

// trace passes a line to the Trace hook.
func (c *Client) trace(dir Direction, line string) {
	if c.opts.Trace != nil {
		c.opts.Trace(dir, c.tlsState != nil, line)
	}
}

// writeLine queues a command line (sent by the next flush) and traces it; shown replaces the
// line in the trace when it is secret.
func (c *Client) writeLine(line, shown string) {
	c.trace(Sent, shown)
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
}

// flush sends what writeLine queued.
func (c *Client) flush(cmd string) error {
	if err := c.bw.Flush(); err != nil {
		return c.breakOn(cmd, err)
	}
	return nil
}

// cmd sends one command line and reads its reply, within one CommandTimeout.
func (c *Client) cmd(ctx context.Context, cmd, line string) (smtp.Reply, error) {
	if err := c.usable(cmd); err != nil {
		return smtp.Reply{}, err
	}
	if err := ctx.Err(); err != nil {
		return smtp.Reply{}, &Error{Command: cmd, Err: err}
	}
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	c.writeLine(line, line)
	if err := c.flush(cmd); err != nil {
		return smtp.Reply{}, err
	}
	return c.readReply(cmd)
}

// checkArg refuses a command argument that could end the command line early.
func checkArg(cmd string, args ...string) error {
	for _, a := range args {
		if strings.ContainsAny(a, "\r\n") {
			return &Error{Command: cmd, Permanent: true, Err: ErrBadArgument}
		}
	}
	return nil
}
