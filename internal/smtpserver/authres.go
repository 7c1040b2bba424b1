package smtpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"strings"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/spf"
)

// SPFChecker evaluates SPF for a client (*spf.Checker in production).
type SPFChecker interface {
	Check(ctx context.Context, ip net.IP, helo, mailFrom string) spf.Outcome
}

// DKIMVerifier checks the DKIM signatures of a message read from r (dkim.Verifier in
// production). It need not read r to its end.
type DKIMVerifier interface {
	Verify(ctx context.Context, r io.Reader) (dkim.Verification, error)
}

// AuthPolicy decides whose mail is judged, what a temporary DNS failure does and what a DMARC
// failure does (policy.Inbound in production).
type AuthPolicy interface {
	// Judges reports whether the mail of c on the listener named listener is checked.
	Judges(c policy.Client, listener string) bool
	// DeferTempError reports whether a temperror result is answered 451 (else it is recorded).
	DeferTempError() bool
	// DMARC returns e with the Disposition tern applies to a message for recipients in
	// rcptDomains (and the Override that says why it differs from e.Requested).
	DMARC(e dmarc.Evaluation, rcptDomains []string) dmarc.Evaluation
}

// Authentication judges incoming mail: SPF of the envelope sender (RFC 7208), DKIM of the
// message (RFC 6376) and DMARC of its From domain (RFC 7489), recorded in one
// Authentication-Results field (RFC 8601) with the server's hostname as authserv-id. What a
// DMARC failure does is policy's to say: the message is refused (550 5.7.1), quarantined
// (envelope.Envelope.Quarantine) or only recorded.
type Authentication struct {
	SPF    SPFChecker
	DKIM   DKIMVerifier
	DMARC  DMARCChecker // nil: no DMARC
	Policy AuthPolicy
	// Record, when set, is given the DMARC evaluation of each judged message that was not
	// deferred with a 451 (refused ones included), with the underlying results filled in, for
	// the aggregate reports (RFC 7489 §7.2). It runs on the session's goroutine before the
	// reply, so it must not block: queue the evaluation and return.
	Record func(dmarc.Evaluation)
}

// judgement is the checking of one message. SPF runs from the start of the message, DKIM as the
// message streams to it through a handoff (handoff.go), a bounded buffer, so that neither holds
// the message in memory, the session does not wait for DNS while the message arrives, and the
// reply waits for no more than what is left of their DNS lookups.
type judgement struct {
	h       *handoff
	spfDone chan spf.Outcome
	dkim    chan dkimDone
}

type dkimDone struct {
	v   dkim.Verification
	err error
}

// errAborted ends the verifier's read of an aborted message.
var errAborted = errors.New("smtpserver: message aborted")

// startJudging starts checking the message of s.tx, or returns nil when policy does not want it.
func (s *session) startJudging() *judgement {
	a := s.opts.Authentication
	if a == nil || !a.Policy.Judges(s.client(), s.role.String()) {
		return nil
	}
	j := &judgement{h: newHandoff(s.srv.chunks, handoffMax), spfDone: make(chan spf.Outcome, 1), dkim: make(chan dkimDone, 1)}
	ctx, ip, helo, from := s.ctx, net.IP(s.remote.Addr().Unmap().AsSlice()), s.helo, s.tx.from.String()
	startCheck(s, "spf", j.spfDone, spf.Outcome{Result: spf.TempError, MailFrom: from, Reason: internalError},
		func() spf.Outcome { return a.SPF.Check(ctx, ip, helo, from) })
	startCheck(s, "dkim", j.dkim, dkimDone{v: dkim.Verification{Results: []dkim.Result{{Status: dkim.TempError, Reason: internalError}}}},
		func() dkimDone {
			// The verifier may stop before the end: the rest is dropped as it comes.
			defer j.h.release()
			v, err := a.DKIM.Verify(ctx, j.h)
			return dkimDone{v, err}
		})
	return j
}

// internalError is the reason of a check's result when the check panicked.
const internalError = "internal error"

// startCheck runs check beside the session and sends its result on done. A panic in it (a bug
// met by a hostile record or message) is logged and sends failed instead, a temperror: the
// session waiting for the verdict gets one, and no other session notices.
func startCheck[T any](s *session, name string, done chan<- T, failed T, check func() T) {
	go func() {
		v := failed
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("check panic", "check", name, "panic", p, "stack", string(debug.Stack()))
			}
			done <- v
		}()
		v = check()
	}()
}

// Write gives the verifier the message as received. It never fails: a verifier that stopped
// reading has its verdict already.
func (j *judgement) Write(p []byte) (int, error) { return j.h.Write(p) }

// finish waits for both verdicts. Both are bounded: SPF by its checker's timeout, DKIM by the
// resolver's, and both by the session's context.
func (j *judgement) finish() (spf.Outcome, dkimDone) {
	j.h.close(io.EOF, false)
	return <-j.spfDone, <-j.dkim
}

func (j *judgement) abort() { j.h.close(errAborted, true) }

// judge finishes the judgement of s.tx: the Authentication-Results field to put on top of the
// message and whether the message goes to quarantine, or the reply that refuses it: a 451 when
// a result is temperror and policy wants it deferred, a 550 when DMARC policy rejects it.
func (s *session) judge(j *judgement) (string, bool, smtp.Reply) {
	disc := s.startDMARC()
	o, d := j.finish()
	if d.err != nil {
		d.v = dkim.Verification{Results: []dkim.Result{{Status: dkim.PermError, Reason: d.err.Error()}}}
	}
	args := []any{"spf", string(o.Result), "spf_domain", o.Domain}
	if o.Reason != "" {
		args = append(args, "spf_reason", o.Reason)
	}
	temp := o.Result == spf.TempError
	for _, r := range d.v.Results {
		args = append(args, "dkim", string(r.Status)+" "+r.Domain+" "+r.Reason)
		temp = temp || r.Status == dkim.TempError
	}
	ev, checked := s.evaluateDMARC(disc, o, d.v)
	if checked {
		args = dmarcLog(args, ev)
		temp = temp || ev.Result == dmarc.TempError
	}
	s.log.Info("authentication", args...)
	s.observeAuthentication(o.Result, d.v.Results, ev, checked)
	if temp && s.opts.Authentication.Policy.DeferTempError() {
		return "", false, smtp.R(smtp.CodeLocalError, smtp.EnhDNSFailure, "Temporary DNS failure while checking the sender's SPF, DKIM or DMARC; try again later")
	}
	if !checked {
		return authResults(s.hostname(), o, d.v, nil), false, smtp.Reply{}
	}
	s.recordDMARC(ev)
	if ev.Disposition == dmarc.PolicyReject {
		return "", false, dmarcReject(ev)
	}
	return authResults(s.hostname(), o, d.v, &ev), ev.Disposition == dmarc.PolicyQuarantine, smtp.Reply{}
}

// authResults formats the Authentication-Results field (RFC 8601 §2.2); ev is nil when DMARC
// was not checked.
func authResults(id string, o spf.Outcome, v dkim.Verification, ev *dmarc.Evaluation) string {
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(id)
	b.WriteString(";\r\n\tspf=")
	b.WriteString(string(o.Result))
	if o.Helo != "" {
		b.WriteString(" smtp.helo=")
		b.WriteString(pvalue(o.Helo))
	} else {
		b.WriteString(" smtp.mailfrom=")
		b.WriteString(pvalue(o.MailFrom))
	}
	for _, r := range v.Results {
		b.WriteString(";\r\n\tdkim=")
		b.WriteString(string(r.Status))
		if r.Status == dkim.None {
			continue
		}
		for _, p := range [][2]string{{"header.d", r.Domain}, {"header.s", r.Selector}, {"header.b", r.HeaderB}} {
			if p[1] != "" {
				b.WriteString(" ")
				b.WriteString(p[0])
				b.WriteString("=")
				b.WriteString(pvalue(p[1]))
			}
		}
	}
	if ev != nil {
		dmarcMethod(&b, *ev)
	}
	b.WriteString("\r\n")
	return b.String()
}

// pvalue writes a property value (RFC 8601 §2.2): as it is when it is a token or an address
// with a dot-atom local part, else as a quoted-string.
func pvalue(s string) string {
	local, domain, addr := strings.Cut(s, "@")
	if s != "" && (isToken(s) || addr && local != "" && isToken(local) && isToken(domain)) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c == 0x7f: // no control characters, no line breaks, in a header
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// isToken reports whether s is a MIME token (RFC 2045 §5.1), with dots: no tspecials, no
// space or control characters.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?=", c) >= 0 {
			return false
		}
	}
	return true
}
