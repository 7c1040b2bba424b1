package send

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// run is the session: connect, EHLO, STARTTLS, AUTH, the transaction, QUIT, stopping after
// QuitAfter's stage or at the first failure that ends the session.
func (s *session) run(ctx context.Context) {
	o := s.o
	s.tr.note("Trying %s...", o.Server)
	c, err := smtpclient.Dial(ctx, o.Server, smtpclient.Options{
		LocalName:            o.EHLO,
		TLSConfig:            s.tlsCfg,
		ImplicitTLS:          o.TLS,
		Dialer:               o.Dialer,
		ConnectTimeout:       o.Timeout,
		CommandTimeout:       o.Timeout,
		DataTimeout:          o.Timeout,
		NoPipelining:         !o.Pipeline,
		NormalizeLineEndings: true,
		Trace:                s.tr.trace,
		TraceSecrets:         true, // the transcript masks what it must itself
		TraceData:            true,
	})
	if err != nil {
		s.failErr(failed("Connection", err), err)
		return
	}
	s.c = c
	defer s.quit(ctx)
	if o.TLS {
		s.tlsNote()
	}
	if s.stop("connect") {
		return
	}
	if err := c.Hello(ctx); err != nil {
		s.failErr(failed("EHLO", err), err)
		return
	}
	if s.stop("ehlo") {
		return
	}
	if o.StartTLS {
		if err := c.StartTLS(ctx); err != nil {
			s.failErr(failed("STARTTLS", err), err)
			return
		}
		s.tlsNote()
		if err := c.Hello(ctx); err != nil {
			s.failErr(failed("EHLO", err), err)
			return
		}
	}
	if s.stop("tls") || !s.auth(ctx) || s.stop("auth") {
		return
	}
	s.transaction(ctx)
}

// stop reports whether the session ends after stage (--quit-after).
func (s *session) stop(stage string) bool { return s.o.QuitAfter == stage }

// quit ends the session politely if it still can.
func (s *session) quit(ctx context.Context) {
	if err := s.c.Quit(ctx); err != nil {
		s.tr.note("QUIT: %s", describeErr(err))
	}
}

// tlsConfig is the client's TLS configuration: verify the server's certificate for the host
// of --server, against the system's roots or --ca's, or not at all with --insecure.
func tlsConfig(o *Options) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(o.Server)
	cfg, err := tlsutil.ClientConfig(host, o.CAFile, o.Insecure)
	if err != nil {
		return nil, fmt.Errorf("--ca: %v", err)
	}
	return cfg, nil
}

// tlsNote says what TLS was negotiated and whom the certificate names.
func (s *session) tlsNote() {
	st, ok := s.c.TLS()
	if !ok {
		return
	}
	s.tr.note("TLS started: %s", tlsutil.Describe(st))
	if len(st.PeerCertificates) == 0 {
		return
	}
	leaf := st.PeerCertificates[0]
	how := "verified"
	switch {
	case s.o.Insecure:
		how = "not verified (--insecure)"
	case s.o.CAFile != "":
		how = "verified with --ca " + s.o.CAFile
	}
	s.tr.note("TLS certificate: %s, issued by %s, %s", leaf.Subject, leaf.Issuer, how)
}

// auth runs AUTH if asked for; false ends the session.
func (s *session) auth(ctx context.Context) bool {
	o := s.o
	if o.Auth == "" {
		return true
	}
	ext := s.c.Extensions()
	st, tlsOn := s.c.TLS()
	mech := o.Auth
	if mech == AuthAuto {
		m, err := pickMechanism(ext.Auth, tlsOn, o.AllowCleartext)
		if err != nil {
			s.fail(ExitFailed, "AUTH: %v", err)
			return false
		}
		mech = m
		s.tr.note("AUTH %s: the best of what the server offers (%s)", mech, strings.Join(ext.Auth, " "))
	} else if !ext.HasAuth(mech) {
		s.tr.note("The server does not offer AUTH %s; trying it anyway", mech)
	}
	var stp *tls.ConnectionState
	if tlsOn {
		stp = &st
	}
	sc, err := newSASLClient(mech, o, stp)
	if err != nil {
		s.fail(ExitUsage, "AUTH: %v", err)
		return false
	}
	if err := s.c.Auth(ctx, sc); err != nil {
		s.failErr("AUTH failed", err)
		return false
	}
	return true
}

// transaction sends the message (or the envelope only, with --quit-after mail or rcpt).
func (s *session) transaction(ctx context.Context) {
	o := s.o
	ext := s.c.Extensions()
	var msg messageInfo
	if s.data != nil {
		msg = *s.data
	} else {
		now := o.Now()
		id, err := messageID(now, o.Rand, o.Hostname)
		if err == nil {
			msg, err = buildMessage(o, now, id, ext.EightBitMIME)
		}
		if err != nil {
			s.fail(ExitUsage, "%v", err)
			return
		}
	}
	var params []string
	switch {
	case msg.eightBit && ext.EightBitMIME:
		params = append(params, "BODY=8BITMIME")
	case msg.eightBit:
		s.tr.note("The message has 8-bit text, and the server does not offer 8BITMIME; sending it anyway")
	}
	if ext.SMTPUTF8 && !smtp.IsASCII(o.From+strings.Join(o.To, "")) {
		params = append(params, "SMTPUTF8")
	}
	if o.Pipeline && !ext.Pipelining {
		s.tr.note("The server does not offer PIPELINING: one command at a time")
	}
	env := smtpclient.Envelope{From: o.From, MailParams: params, Size: int64(len(msg.text))}
	for _, to := range o.To {
		env.Rcpts = append(env.Rcpts, smtpclient.Recipient{Addr: to})
	}
	var res *smtpclient.SendResult
	var err error
	switch o.QuitAfter {
	case "mail":
		if ext.Has("SIZE") {
			params = append(params, "SIZE="+strconv.Itoa(len(msg.text)))
		}
		if err := s.c.Mail(ctx, o.From, params...); err != nil {
			s.failErr(failed("MAIL FROM:<"+o.From+">", err), err)
		}
		return
	case "rcpt":
		res, err = s.c.Send(ctx, env, nil)
	default:
		res, err = s.c.Send(ctx, env, bytes.NewReader(msg.text))
	}
	s.report(res, err)
}

// report puts the transaction's failures in the transcript.
func (s *session) report(res *smtpclient.SendResult, err error) {
	var e *smtpclient.Error
	if errors.As(err, &e) && e.Command == smtpclient.CmdMAIL {
		s.failErr(failed("MAIL FROM:<"+s.o.From+">", e), err)
		return
	}
	reported := false
	for _, rr := range res.Rcpts {
		if rr.Err != nil {
			s.failErr(failed("RCPT TO:<"+rr.Addr+">", rr.Err), rr.Err)
			reported = reported || rr.Err == err
		}
	}
	if err != nil && !reported {
		what := "the message"
		if errors.As(err, &e) && e.Command != smtpclient.CmdDATA && e.Command != smtpclient.CmdBDAT {
			what = e.Command
		}
		s.failErr(failed(what, err), err)
	}
}

// failed words a failure: "refused" when the server said no, "failed" otherwise.
func failed(what string, err error) string {
	var e *smtpclient.Error
	if errors.As(err, &e) && e.Code != 0 {
		return what + " refused"
	}
	return what + " failed"
}
