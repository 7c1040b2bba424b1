package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// session is one of the parallel senders: one connection at a time, the commands of the
// current step waiting for their replies, and the buffer its messages' headers are made in.
type session struct {
	r  *run
	id int
	c  *smtpclient.Client

	pending []pendingCmd // commands sent whose final reply has not come, oldest first
	hdr     []byte
	rd      msgReader
}

// pendingCmd is a command line sent at sent.
type pendingCmd struct {
	name string
	sent time.Time
}

// Command names in the per-command latencies, in the order the summary lists them.
const (
	cmdConnect = "CONNECT"
	cmdDataEnd = "data-end" // the reply to the end of the message, from the 354 on
	cmdOther   = "other"
)

var commandNames = []string{cmdConnect, "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", cmdDataEnd, "RSET", "QUIT", cmdOther}

// loop sends messages until the run is over, then says QUIT.
func (s *session) loop(ctx context.Context) {
	defer s.close(ctx)
	for {
		seq, ok := s.r.next(ctx)
		if !ok {
			return
		}
		if s.c == nil {
			if err := s.connect(ctx); err != nil {
				s.r.fail(ctx, s.r.o.Now(), err)
				continue
			}
		}
		if err := s.send(ctx, seq); err != nil || !s.r.o.Reuse {
			if keepsConnection(err) && s.r.o.Reuse {
				continue
			}
			s.close(ctx)
		}
	}
}

// keepsConnection reports whether the connection is still in step after err: the server
// answered with a refusal that does not end the session.
func keepsConnection(err error) bool {
	var e *smtpclient.Error
	return errors.As(err, &e) && e.Code != 0 && e.Code != 421
}

// connect opens a connection and readies it for MAIL: EHLO, STARTTLS and AUTH as asked.
func (s *session) connect(ctx context.Context) error {
	o := &s.r.o
	s.pending = s.pending[:0]
	opts := smtpclient.Options{
		LocalName:      o.EHLO,
		TLSConfig:      s.r.tlsCfg,
		ImplicitTLS:    o.TLS,
		Dialer:         s.r.dialer,
		ConnectTimeout: o.Timeout,
		CommandTimeout: o.Timeout,
		DataTimeout:    o.Timeout,
		NoPipelining:   !o.Pipeline,
		Trace:          s.trace,
	}
	t0 := o.Now()
	c, err := smtpclient.Dial(ctx, o.Server, opts)
	s.r.conns.Add(1)
	if err != nil {
		s.r.connErrs.Add(1)
		return err
	}
	s.r.cmdLat[cmdConnect].Record(o.Now().Sub(t0))
	s.c = c
	if err := c.Hello(ctx); err != nil {
		return s.drop(err)
	}
	if o.StartTLS {
		t0 := o.Now()
		if err := c.StartTLS(ctx); err != nil {
			return s.drop(err)
		}
		s.r.cmdLat["STARTTLS"].Record(o.Now().Sub(t0))
		if err := c.Hello(ctx); err != nil {
			return s.drop(err)
		}
	}
	if o.Auth != "" {
		if err := s.auth(ctx); err != nil {
			return s.drop(err)
		}
	}
	return nil
}

// auth logs in with the mechanism of the options.
func (s *session) auth(ctx context.Context) error {
	o := &s.r.o
	host, p, _ := net.SplitHostPort(o.Server)
	port, _ := strconv.Atoi(p) // checked by Options.check
	var st *tls.ConnectionState
	if cs, ok := s.c.TLS(); ok {
		st = &cs
	}
	sc, err := sasl.NewClient(o.Auth, sasl.ClientOptions{User: o.User, Password: o.Password, Host: host, Port: port, TLS: st})
	if err != nil {
		return &smtpclient.Error{Command: smtpclient.CmdAUTH, Permanent: true, Err: err}
	}
	return s.c.Auth(ctx, sc)
}

// drop closes a connection that failed while being readied and returns err.
func (s *session) drop(err error) error {
	_ = s.c.Close() // err is what to report
	s.c = nil
	return err
}

// send sends message seq and counts its outcome.
func (s *session) send(ctx context.Context, seq int64) error {
	r := s.r
	s.hdr = r.msg.header(s.hdr[:0], seq)
	s.rd.reset(s.hdr, r.msg.body)
	size := int64(len(s.hdr) + len(r.msg.body))
	env := smtpclient.Envelope{From: r.o.From, Size: size, Rcpts: r.rcpts}
	t0 := r.o.Now()
	res, err := s.c.Send(ctx, env, &s.rd)
	t1 := r.o.Now()
	if err != nil {
		r.fail(ctx, t1, err)
		return err
	}
	r.accepted.Add(1)
	r.bytes.Add(size)
	r.msgLat.Record(t1.Sub(t0))
	r.tl.add(t1, true, size)
	for _, rr := range res.Rcpts {
		if rr.Err != nil {
			r.errs.add(rr.Err)
		} else {
			r.rcptsOK.Add(1)
		}
	}
	return nil
}

// fail counts a message that was not sent, unless the run was cancelled under it.
func (r *run) fail(ctx context.Context, at time.Time, err error) {
	if ctx.Err() != nil {
		return
	}
	r.failed.Add(1)
	r.errs.add(err)
	r.tl.add(at, false, 0)
}

// close ends the connection: QUIT, or only a close once the run is cancelled.
func (s *session) close(ctx context.Context) {
	if s.c == nil {
		return
	}
	if ctx.Err() != nil {
		_ = s.c.Close() // cancelled: no QUIT to wait for
	} else {
		_ = s.c.Quit(ctx) // the messages are counted: how QUIT went changes nothing
	}
	s.c = nil
}

// trace times each command from its line to the last line of its reply (see the package
// doc). It runs in the session's goroutine, from within smtpclient.
func (s *session) trace(dir smtpclient.Direction, _ bool, line string) {
	now := s.r.o.Now()
	if dir == smtpclient.Sent {
		name := commandName(line, s.pending)
		switch name {
		case "STARTTLS":
			return // timed with its handshake, in connect
		case cmdDataEnd:
			if n := len(s.pending); n > 0 && s.pending[n-1].name == cmdDataEnd {
				return // the empty message after a 354: already waiting since the 354
			}
		}
		s.pending = append(s.pending, pendingCmd{name, now})
		return
	}
	if len(line) > 3 && line[3] == '-' || len(s.pending) == 0 {
		return // not the last line of a reply, or the greeting
	}
	p := s.pending[0]
	s.pending = append(s.pending[:0], s.pending[1:]...)
	s.r.cmdLat[p.name].Record(now.Sub(p.sent))
	if p.name == "DATA" && strings.HasPrefix(line, "354") {
		s.pending = append(s.pending, pendingCmd{cmdDataEnd, now})
	}
}

// commandName is the verb of a command line for the latencies; a line that is not a command
// is an AUTH response (a base64 line, or its redaction).
func commandName(line string, pending []pendingCmd) string {
	if line == "." {
		return cmdDataEnd
	}
	verb, _, _ := strings.Cut(line, " ")
	for _, c := range commandNames {
		if strings.EqualFold(c, verb) && c != cmdConnect {
			return c
		}
	}
	if len(pending) == 0 || pending[len(pending)-1].name == "AUTH" || line == "*" {
		return "AUTH"
	}
	return cmdOther
}
