package smtpserver

import (
	"cmp"
	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/spf"
)

// Observer is told what the sessions do, for metrics (package metrics in production). It is
// called on the sessions' goroutines, so its methods must be safe for concurrent use and must
// not block. Labels it is given are bounded: a listener's name, a mechanism, a fixed reason,
// a reply; never an address or a domain.
type Observer interface {
	// Connected is a new connection, before any check.
	Connected(listener string)
	// Refused is a connection refused before the greeting, for reason (one of the Refused*).
	Refused(listener, reason string)
	// SessionStarted and SessionEnded bracket a session that passed the connection limits.
	SessionStarted(listener string)
	SessionEnded(listener string)
	// Accepted is a message queued, of size octets.
	Accepted(listener string, size int64)
	// Rejected is a message refused or deferred after its data, with the reply it got.
	Rejected(listener string, r smtp.Reply)
	// CommandRefused is a MAIL or RCPT command (command "mail", "rcpt") refused or deferred,
	// with the reply it got.
	CommandRefused(listener, command string, r smtp.Reply)
	// Auth is the outcome of an AUTH exchange with mechanism mech.
	Auth(mech string, ok bool)
	// Filtered is a content filter's verdict that changed the fate of a message or session:
	// "reject", "tempfail", "discard" (filter.Action's names) or "quarantine".
	Filtered(outcome string)
	// Authenticated gives the SPF, DKIM and (when checked, else "") DMARC results of a message.
	Authenticated(spf spf.Result, dkim []dkim.Status, dmarc dmarc.Result)
}

// Reasons given to Observer.Refused.
const (
	RefusedLimit    = "limit"    // the concurrency limits (Options.Limiter)
	RefusedRate     = "rate"     // the connection rate (Options.Rate)
	RefusedPregreet = "pregreet" // talked before the greeting (Options.Screen)
	RefusedTLS      = "tls"      // a TLS handshake failed (implicit TLS, or after STARTTLS): the session ends
)

// Commands given to Observer.CommandRefused.
const (
	CommandMail = "mail"
	CommandRcpt = "rcpt"
)

// nopObserver is the Observer of a server without metrics.
type nopObserver struct{}

func (nopObserver) Connected(string)                                      {}
func (nopObserver) Refused(string, string)                                {}
func (nopObserver) SessionStarted(string)                                 {}
func (nopObserver) SessionEnded(string)                                   {}
func (nopObserver) Accepted(string, int64)                                {}
func (nopObserver) Rejected(string, smtp.Reply)                           {}
func (nopObserver) CommandRefused(string, string, smtp.Reply)             {}
func (nopObserver) Filtered(string)                                       {}
func (nopObserver) Auth(string, bool)                                     {}
func (nopObserver) Authenticated(spf.Result, []dkim.Status, dmarc.Result) {}

// obs is the server's Observer.
func (s *session) obs() Observer { return s.opts.Observer }

// listenerName names the session's listener in what the Observer is told: its name, which is
// the role's (smtp, submission, submissions) for the implicit listeners. Names are the
// admin's, a few per server: the label stays bounded.
func (s *session) listenerName() string { return cmp.Or(s.lis.Name, s.role.String()) }

// observeAuthentication tells the Observer the results of judge.
func (s *session) observeAuthentication(o spf.Result, dk []dkim.Result, ev dmarc.Evaluation, checked bool) {
	st := make([]dkim.Status, len(dk))
	for i, r := range dk {
		st[i] = r.Status
	}
	var dm dmarc.Result
	if checked {
		dm = ev.Result
	}
	s.obs().Authenticated(o, st, dm)
}
