package smtpserver

import (
	"context"
	"strings"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/spf"
)

// DMARCChecker evaluates DMARC (*dmarc.Checker in production): Discover finds the policy of the
// From domain while SPF and DKIM finish, Evaluate judges their results against it.
type DMARCChecker interface {
	Discover(ctx context.Context, from []string) dmarc.Discovery
	Evaluate(d dmarc.Discovery, m dmarc.Message) dmarc.Evaluation
}

// startDMARC starts the policy discovery for the From fields of s.tx, read as the message
// streamed; nil when DMARC is not checked. The message is in by now, so its From is known and
// the lookup overlaps the wait for the SPF and DKIM verdicts.
func (s *session) startDMARC() <-chan dmarc.Discovery {
	a := s.opts.Authentication
	if a.DMARC == nil || s.tx.author == nil {
		return nil
	}
	ch := make(chan dmarc.Discovery, 1)
	from, ctx := s.tx.author.Fields(), s.ctx // two at most: enough to tell several apart
	startCheck(s, "dmarc", ch, dmarc.Discovery{Result: dmarc.TempError, Reason: internalError},
		func() dmarc.Discovery { return a.DMARC.Discover(ctx, from) })
	return ch
}

// evaluateDMARC judges the message against the policy found and asks policy what to do with
// it. ok is false when DMARC is not checked.
func (s *session) evaluateDMARC(disc <-chan dmarc.Discovery, o spf.Outcome, v dkim.Verification) (ev dmarc.Evaluation, ok bool) {
	if disc == nil {
		return dmarc.Evaluation{}, false
	}
	a := s.opts.Authentication
	m := dmarc.Message{
		SourceIP:     s.remote.Addr().Unmap().String(),
		EnvelopeFrom: envelope.Domain(s.tx.from.String()),
		SPF:          dmarc.AuthResult{Domain: o.Domain, Scope: "mfrom", Result: string(o.Result)},
	}
	if m.SPF.Domain == "" {
		m.SPF.Domain = envelope.Domain(o.MailFrom)
	}
	if s.tx.from.String() == "" {
		// RFC 7489 §4.1 with RFC 7208 §2.4: the null sender's SPF identity is the HELO name.
		m.EnvelopeFrom, m.SPF.Scope = s.helo, "helo"
	}
	for _, r := range v.Results {
		if r.Status != dkim.None {
			m.DKIM = append(m.DKIM, dmarc.AuthResult{Domain: r.Domain, Selector: r.Selector, Result: string(r.Status)})
		}
	}
	var rcptDomains []string
	for _, r := range s.tx.rcpts {
		rcptDomains = append(rcptDomains, envelope.Domain(r.Addr))
	}
	return a.Policy.DMARC(a.DMARC.Evaluate(<-disc, m), rcptDomains), true
}

// recordDMARC hands the evaluation of a message that was not deferred to the recorder.
func (s *session) recordDMARC(ev dmarc.Evaluation) {
	if rec := s.opts.Authentication.Record; rec != nil {
		rec(ev)
	}
}

// dmarcReject is the answer to a message whose DMARC policy, as applied, is reject (RFC 7489
// §6.6.4 and §10.3: after DATA, a 5.7.1 naming the reason, so that a human reading the bounce
// knows why).
func dmarcReject(ev dmarc.Evaluation) smtp.Reply {
	return smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhNotAuthorized,
		"Message rejected by the DMARC policy of "+ev.FromDomain+": "+ev.Reason)
}

// dmarcMethod writes the dmarc result of an Authentication-Results field (RFC 7489 §11.2), with
// the policy the domain asks for and what tern did in a comment, as Gmail does: dmarc=fail
// (p=reject dis=quarantine) header.from=example.com.
func dmarcMethod(b *strings.Builder, ev dmarc.Evaluation) {
	b.WriteString(";\r\n\tdmarc=")
	b.WriteString(string(ev.Result))
	if ev.Published != nil {
		b.WriteString(" (p=")
		b.WriteString(string(ev.PublishedPolicy()))
		b.WriteString(" dis=")
		b.WriteString(string(ev.Disposition))
		b.WriteString(")")
	}
	if ev.FromDomain != "" {
		b.WriteString(" header.from=")
		b.WriteString(pvalue(ev.FromDomain))
	}
}

// dmarcLog adds the DMARC outcome to the authentication log line.
func dmarcLog(args []any, ev dmarc.Evaluation) []any {
	args = append(args, "dmarc", string(ev.Result), "dmarc_from", ev.FromDomain)
	if ev.Published != nil {
		args = append(args, "dmarc_policy", string(ev.PublishedPolicy()), "dmarc_disposition", string(ev.Disposition))
	}
	if ev.Override != "" {
		args = append(args, "dmarc_override", ev.Override)
	}
	if ev.Reason != "" && ev.Result != dmarc.Pass {
		args = append(args, "dmarc_reason", ev.Reason)
	}
	return args
}
