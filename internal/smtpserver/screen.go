package smtpserver

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// Screener judges the clients of the smtp listener before DATA (policy.Screen in production):
// DNS lists, reverse DNS, greylisting. Authenticated clients are its business too (it lets
// them through).
type Screener interface {
	// Look makes the lookups of a new client; it runs at connect, beside the greeting.
	Look(ctx context.Context, ip netip.Addr) policy.ClientReport
	// CheckRcpt decides on a recipient that relay control accepted.
	CheckRcpt(c policy.Client, r policy.ClientReport, from, rcpt smtp.Address) smtp.Reply
}

// ScreenOptions are the checks of the smtp listener before DATA; the zero value does none.
type ScreenOptions struct {
	// Screener makes the lookups and decides at RCPT; nil: none, and the Received header
	// carries no client name.
	Screener Screener
	// PregreetWait holds the greeting back this long, and refuses a client that talks before
	// it (postscreen's pregreet test); 0: greet at once.
	PregreetWait time.Duration
}

// screening is the session's view of its lookups.
type screening struct {
	done   chan struct{} // closed when report is set
	report policy.ClientReport
}

// replyPregreet refuses an early talker (postscreen's "PREGREET" verdict): RFC 5321 §4.3.1
// allows 554 in place of the greeting, and §4.1.1 says the client waits for it.
var replyPregreet = smtp.R(smtp.CodeTransactionFailed, smtp.EnhInvalidCommand, "Protocol error: client talked before the greeting, closing")

// screenConnect starts the lookups of a client of the smtp listener, and holds the greeting
// for PregreetWait, refusing a client that talks in it; false ends the session.
func (s *session) screenConnect() bool {
	o := s.opts.Screen
	if s.role != RoleMX {
		return true
	}
	if o.Screener != nil {
		sc := &screening{done: make(chan struct{})}
		s.screen = sc
		ctx, cancel := context.WithTimeout(s.ctx, lookupTimeout)
		// Owned by the server, which waits for it at shutdown; it ends with the session's context.
		s.srv.wg.Add(1)
		go func() {
			defer s.srv.wg.Done()
			defer cancel()
			defer close(sc.done)
			defer func() {
				if v := recover(); v != nil {
					s.log.Error("screen lookup panic", "panic", v)
				}
			}()
			sc.report = o.Screener.Look(ctx, s.remote.Addr().Unmap())
			s.log.Info("client screened", sc.report.LogAttrs()...)
		}()
	}
	if o.PregreetWait <= 0 {
		return true
	}
	// Wait on the socket, not on a timer: any octet before the deadline is the verdict. The
	// session is idle meanwhile, as between commands: a shutdown ends the wait at once (the
	// client then gets the greeting and the 421 of the shutdown).
	s.startPhase(phaseIdle, o.PregreetWait)
	_, err := s.br.Peek(1)
	s.readBy = time.Time{}
	var ne net.Error
	switch {
	case err == nil:
		s.log.Info("pregreet: client talked before the greeting", "code", replyPregreet.Code, "wait", o.PregreetWait)
		s.obs().Refused(s.listenerName(), RefusedPregreet)
		s.refuse(replyPregreet)
		s.flush()
		return false
	case errors.As(err, &ne) && ne.Timeout():
		return true
	default:
		s.ioError(err) // gone before the greeting
		return false
	}
}

// screenReport waits for the lookups of this session; ok is false when there are none, or
// they did not end in time (then nothing is held against the client).
func (s *session) screenReport() (policy.ClientReport, bool) {
	if s.screen == nil {
		return policy.ClientReport{}, false
	}
	ctx, cancel := s.lookupContext()
	defer cancel()
	select {
	case <-s.screen.done:
		return s.screen.report, true
	case <-ctx.Done():
		s.log.Warn("screen lookups not done in time, not used")
		return policy.ClientReport{}, false
	}
}

// screenRcpt asks the screener about a recipient relay control accepted.
func (s *session) screenRcpt(rcpt smtp.Address) smtp.Reply {
	rep, ok := s.screenReport()
	if !ok {
		return smtp.R(smtp.CodeOK, smtp.EnhDestOK, "Ok")
	}
	return s.opts.Screen.Screener.CheckRcpt(s.client(), rep, s.tx.from, rcpt)
}

// clientName is the client's name for the Received header, as Postfix writes it: the
// forward-confirmed name, "unknown" without one, "" when it was not looked up.
func (s *session) clientName() string {
	name, _ := s.clientNames()
	return name
}

// clientNames are clientName and the first name the client's PTR records gave, confirmed or
// not ("" without one).
func (s *session) clientNames() (name, ptr string) {
	rep, ok := s.screenReport()
	if !ok || !rep.Looked {
		return "", ""
	}
	return cmp.Or(rep.Name.Name, "unknown"), rep.Name.PTR
}
