package smtpserver

import (
	"net/netip"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// RateChecker decides on connections, messages and recipients by their rate (policy.Rate in
// production, Postfix's anvil). Each call counts the event it lets through; a refusal's reply
// is sent as it is.
type RateChecker interface {
	// Connect is asked before the greeting; a refusal is a 421 and the connection is closed.
	Connect(ip netip.Addr) (smtp.Reply, bool)
	// Mail is asked for a MAIL command that is otherwise acceptable.
	Mail(c policy.Client) (smtp.Reply, bool)
	// Rcpt is asked for a RCPT command that is well formed, before the recipient is looked up.
	Rcpt(c policy.Client) (smtp.Reply, bool)
}

// rateConnect asks Options.Rate about the new connection, and refuses it when told to.
func (s *session) rateConnect() bool {
	if s.opts.Rate == nil {
		return true
	}
	reply, ok := s.opts.Rate.Connect(s.remote.Addr())
	if !ok {
		s.obs().Refused(s.listenerName(), RefusedRate)
		s.refuseConnection(reply)
	}
	return ok
}

// rateMail asks Options.Rate about a MAIL command.
func (s *session) rateMail() (smtp.Reply, bool) {
	if s.opts.Rate == nil {
		return smtp.Reply{}, true
	}
	return s.opts.Rate.Mail(s.client())
}

// rateRcpt asks Options.Rate about a RCPT command.
func (s *session) rateRcpt() (smtp.Reply, bool) {
	if s.opts.Rate == nil {
		return smtp.Reply{}, true
	}
	return s.opts.Rate.Rcpt(s.client())
}

// refuseConnection answers a connection refused before the greeting (a 421) and logs it; the
// session then ends.
func (s *session) refuseConnection(reply smtp.Reply) {
	s.log.Info("connection refused", "code", reply.Code, "reason", reply.Text)
	// On the implicit TLS port the client speaks TLS first: the 421 must come inside it.
	if s.role == RoleSubmissions && !s.handshake() {
		return
	}
	s.reply(reply)
	s.flush()
}
