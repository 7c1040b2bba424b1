package lmtp

import (
	"errors"
	"fmt"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// clientError classifies a failure from smtpclient for one recipient: the server's reply
// when it sent one (its own words, for the DSN), or tern's description of what went wrong.
func (d *Deliverer) clientError(err error) *delivery.Error {
	var ce *smtpclient.Error
	if !errors.As(err, &ce) {
		return delivery.Temporary("local delivery interrupted", err)
	}
	if ce.Command == smtpclient.CmdConnect || ce.Command == smtpclient.CmdLHLO {
		return d.sessionError(err)
	}
	switch {
	case ce.Code >= 400:
		return d.refusal(ce)
	case ce.Code != 0:
		// A 2xx or 3xx where neither belongs (a 250 to DATA): the server is out of step.
		return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhProtoOther,
			Msg: "unexpected reply from the local mailbox server", Err: d.wrap(err)}
	case errors.Is(err, smtpclient.ErrMessageTooBig):
		return &delivery.Error{Permanent: true, Code: smtp.CodeExceededStorage, Enh: smtp.EnhMsgTooBig,
			Msg: "message too big for the local mailbox server", Err: d.wrap(err)}
	case errors.Is(err, smtpclient.ErrBadArgument):
		return &delivery.Error{Permanent: true, Code: smtp.CodeMailboxNameInvalid, Enh: smtp.EnhBadDestSyntax,
			Msg: "address not valid for the local mailbox server", Err: d.wrap(err)}
	}
	return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhBadConnection,
		Msg: "lost connection with the local mailbox server", Err: d.wrap(err)}
}

// sessionError classifies a failure to open a session (connect, greeting, LHLO). It is
// temporary whatever the server said: a refusal of the session is about the server, not the
// message, and a misconfigured server must hold mail rather than bounce it. A 4xx keeps the
// server's words.
func (d *Deliverer) sessionError(err error) *delivery.Error {
	var ce *smtpclient.Error
	switch {
	case !errors.As(err, &ce):
		return delivery.Temporary("local delivery interrupted", err)
	case ce.Code >= 400 && ce.Code < 500:
		return d.refusal(ce)
	case ce.Code != 0:
		return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhSystemOther,
			Msg: "local mailbox server refused the session", Err: d.wrap(err)}
	case ce.Command == smtpclient.CmdConnect:
		return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoAnswer,
			Msg: "cannot connect to the local mailbox server", Err: d.wrap(err)}
	}
	return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhBadConnection,
		Msg: "lost connection with the local mailbox server", Err: d.wrap(err)}
}

// refusal is the outcome of a reply that refused: the reply as sent, for the DSN's
// Diagnostic-Code (RFC 3464 §2.3.6), and where it came from, for the log.
func (d *Deliverer) refusal(ce *smtpclient.Error) *delivery.Error {
	return delivery.Refused(ce.Reply(),
		fmt.Errorf("said by LMTP server %s in reply to %s", d.opts.Addr, ce.Command))
}

// wrap adds the server's address to a cause, for the log.
func (d *Deliverer) wrap(err error) error {
	return fmt.Errorf("LMTP server %s: %w", d.opts.Addr, err)
}
