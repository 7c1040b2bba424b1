package remote

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// Reply codes of the failures tern decides itself.
const (
	codeLocalError         = smtp.CodeLocalError         // 451: temporary, ours
	codeMailboxUnavailable = smtp.CodeMailboxUnavailable // 550
	codeTooBig             = smtp.CodeExceededStorage    // 552: over the server's SIZE
	codeNotPermitted       = smtp.CodeMailboxNameInvalid // 553: SMTPUTF8 needed (RFC 6531 §3.2)
	codeFailed             = smtp.CodeTransactionFailed  // 554
	codeNullMX             = 556                         // RFC 7505 §4.2: domain does not accept mail
	codeTLSUnavailable     = 454                         // TLS not available (RFC 3207 §4)
)

// Enhanced status codes (RFC 3463 and its registry, RFC 5248) of those failures.
const (
	enhInterrupted    = "4.3.0"  // other mail system status
	enhNoAnswer       = "4.4.1"  // no answer from host
	enhBadConnection  = "4.4.2"  // bad connection
	enhDNSFailure     = "4.4.3"  // directory server failure
	enhNoRoute        = "4.4.4"  // unable to route
	enhNoRoutePerm    = "5.4.4"  // unable to route, for good
	enhBadDomain      = "5.1.2"  // bad destination system address
	enhNullMX         = "5.1.10" // recipient address has null MX (RFC 7505 §4.2)
	enhLoop           = "5.4.6"  // routing loop detected
	enhTooBig         = "5.3.4"  // message too big for system
	enhConversion     = "5.6.3"  // conversion required but not supported
	enhNonASCII       = "5.6.7"  // non-ASCII addresses not permitted (RFC 6531)
	enhRequireTLS     = "5.7.30" // REQUIRETLS support required (RFC 8689 §5)
	enhAuthOther      = "4.7.0"  // other security status
	enhAuthBadCreds   = "4.7.8"  // authentication credentials invalid
	enhTLSNotOffered  = "4.7.4"  // security features not supported
	enhTLSFailed      = "4.7.5"  // cryptographic failure
	enhProtocolOther  = "5.5.0"  // other protocol status
	enhOtherTemporary = "4.0.0"  // a reply without an enhanced code (delivery.Refused)
)

// replyError is the *delivery.Error for a server's refusal r of cmd at host: the reply as the
// server sent it, for the DSN, and the detail for the log.
func replyError(host, remote, cmd string, r smtp.Reply) *delivery.Error {
	return refusal(host, remote, cmd, r.Code, r.Enhanced(), r.Text)
}

func refusal(host, remote, cmd string, code int, enh, text string) *delivery.Error {
	e := delivery.Refused(code, enh, text, nil)
	e.RemoteMTA = host
	e.Err = fmt.Errorf("%s said in reply to %s: %d %s %s", remote, cmd, code, e.Enhanced, e.Msg)
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
		return refusal(host, remote, ce.Command, ce.Code, ce.Enhanced, ce.Text)
	}
	cmd := "the session"
	if ce != nil && ce.Command != "" {
		cmd = ce.Command
	}
	enh, msg := enhBadConnection, "lost connection with "+host+" during "+cmd
	if ce != nil && ce.Command == smtpclient.CmdConnect {
		enh, msg = enhNoAnswer, "cannot connect to "+host
	}
	return &delivery.Error{Code: codeLocalError, Enhanced: enh, Msg: msg, RemoteMTA: host,
		Err: fmt.Errorf("%s: %w", remote, err)}
}

// errLoop is the failure of mail that would come back to us.
func errLoop(domain, host string) *delivery.Error {
	return &delivery.Error{Permanent: true, Code: codeFailed, Enhanced: enhLoop,
		Msg: "mail for " + domain + " loops back to myself", RemoteMTA: host}
}

// errRequireTLS is the failure of a REQUIRETLS message that cannot go out as RFC 8689 asks.
func errRequireTLS(domain, host string, cause error) *delivery.Error {
	return &delivery.Error{Permanent: true, Code: codeMailboxUnavailable, Enhanced: enhRequireTLS,
		Msg: "REQUIRETLS support required, and the route to " + domain + " cannot provide it", RemoteMTA: host, Err: cause}
}
