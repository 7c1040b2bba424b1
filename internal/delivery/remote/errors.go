package remote

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// replyError is the *delivery.Error for a server's refusal r of cmd at host: the reply as the
// server sent it, for the DSN, and the detail for the log.
func replyError(host, remote, cmd string, r smtp.Reply) *delivery.Error {
	e := delivery.Refused(r, nil)
	e.RemoteMTA = host
	e.Err = fmt.Errorf("%s said in reply to %s: %d %s %s", remote, cmd, e.Code, e.Enhanced(), e.Msg)
	return e
}

// replyText joins a multiline reply's lines for a one-line diagnostic.
func replyText(text string) string { return strings.ReplaceAll(text, "\n", " ") }

// clientError classifies an smtpclient failure of a step at host: the server's reply when it
// sent one (a 5xx is permanent), otherwise a temporary failure (a network error, a timeout, a
// malformed reply: the same may well work later).
func clientError(host, remote string, err error) *delivery.Error {
	var ce *smtpclient.Error
	if errors.As(err, &ce) && ce.Code != 0 {
		return replyError(host, remote, ce.Command, ce.Reply())
	}
	cmd := "the session"
	if ce != nil && ce.Command != "" {
		cmd = ce.Command
	}
	enh, msg := smtp.EnhBadConnection, "lost connection with "+host+" during "+cmd
	if ce != nil && ce.Command == smtpclient.CmdConnect {
		enh, msg = smtp.EnhNoAnswer, "cannot connect to "+host
	}
	return &delivery.Error{Code: smtp.CodeLocalError, Enh: enh, Msg: msg, RemoteMTA: host,
		Err: fmt.Errorf("%s: %w", remote, err)}
}

// errLoop is the failure of mail that would come back to us.
func errLoop(domain, host string) *delivery.Error {
	return &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhLoop,
		Msg: "mail for " + domain + " loops back to myself", RemoteMTA: host}
}

// errRequireTLS is the failure of a REQUIRETLS message that cannot go out as RFC 8689 asks.
func errRequireTLS(domain, host string, cause error) *delivery.Error {
	return &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhRequireTLS,
		Msg: "REQUIRETLS support required, and the route to " + domain + " cannot provide it", RemoteMTA: host, Err: cause}
}
