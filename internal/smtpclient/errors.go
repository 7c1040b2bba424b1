package smtpclient

import (
	"errors"
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// Causes of an Error that carries no reply (Error.Code 0). A network error, a TLS error or the
// context's error can be the cause as well; test with errors.Is.
var (
	ErrReplyLineTooLong  = errors.New("smtpclient: reply line too long")
	ErrReplyTooManyLines = errors.New("smtpclient: reply has too many lines")
	ErrReplyTooBig       = errors.New("smtpclient: reply too big")
	ErrMalformedReply    = errors.New("smtpclient: malformed reply")
	// ErrDataAfterStartTLS: the server sent more than its reply to STARTTLS before the TLS
	// handshake. Those octets would be read as if they came over TLS (the plaintext injection of
	// CVE-2011-0411, from the client's side), so the connection is dropped.
	ErrDataAfterStartTLS = errors.New("smtpclient: data after the STARTTLS reply")
	ErrNotOffered        = errors.New("smtpclient: extension not offered by the server")
	ErrAlreadyTLS        = errors.New("smtpclient: TLS is already on")
	ErrNoTLSConfig       = errors.New("smtpclient: no TLS configuration")
	ErrBadChallenge      = errors.New("smtpclient: AUTH challenge is not base64")
	ErrTooManyRounds     = errors.New("smtpclient: too many AUTH challenges")
	ErrMessageTooBig     = errors.New("smtpclient: message larger than the server's SIZE limit")
	ErrBadArgument       = errors.New("smtpclient: CR or LF in a command argument")
	ErrNoRecipients      = errors.New("smtpclient: no recipients")
	// ErrLMTPData: Data, Bdat or Send was asked to send a message over LMTP, where the end of
	// the data has one reply per recipient (RFC 2033 §4.2); SendLMTP reads them.
	ErrLMTPData = errors.New("smtpclient: LMTP needs SendLMTP to send a message")
	// ErrLMTPDataWithoutRcpts: an LMTP server took DATA although it refused every recipient,
	// so how many replies follow the data is unknown (none, by RFC 2033 §4.2); the connection
	// is dropped.
	ErrLMTPDataWithoutRcpts = errors.New("smtpclient: LMTP server accepted DATA without recipients")
	// ErrNotLMTP: SendLMTP was called on a client without Options.LMTP.
	ErrNotLMTP = errors.New("smtpclient: not an LMTP client")
	// ErrBroken is the cause for every command after an error that left the connection in an
	// unknown state (a network error, a timeout, a malformed reply, a 421).
	ErrBroken = errors.New("smtpclient: connection unusable after an earlier error")
)

// Commands as Error.Command names them. CONNECT covers dialing, the handshake of implicit TLS
// and the greeting; STARTTLS covers its handshake.
const (
	CmdConnect  = "CONNECT"
	CmdEHLO     = "EHLO"
	CmdLHLO     = "LHLO" // LMTP's EHLO (RFC 2033 §4.1)
	CmdHELO     = "HELO"
	CmdSTARTTLS = "STARTTLS"
	CmdAUTH     = "AUTH"
	CmdMAIL     = "MAIL"
	CmdRCPT     = "RCPT"
	CmdDATA     = "DATA"
	CmdBDAT     = "BDAT"
	CmdRSET     = "RSET"
	CmdQUIT     = "QUIT"
)

// Error is a failed step of an SMTP session, classified for the caller's retry decision (RFC
// 5321 §4.2.1: 4xx is transient, 5xx permanent).
//
// When the server answered, Code, Enhanced and Text hold its reply. When it did not (a network
// error, a timeout, a TLS failure, a malformed reply, a local check), Code is 0 and Err says why;
// such an error is temporary unless Permanent says otherwise (ErrMessageTooBig), because the
// same attempt may well work later (maddy's queue rule: unknown means temporary).
type Error struct {
	Code      int    // the reply code; 0 when no reply said anything
	Enhanced  string // the enhanced status code ("5.1.1", RFC 3463), or ""
	Text      string // the reply text without codes, its lines joined by "\n"
	Command   string // the step that failed: CmdMAIL, CmdRCPT, ...
	Permanent bool   // retrying the same thing will fail the same way
	Err       error  // the cause when there is no reply (or more to say than the reply)
}

func (e *Error) Error() string {
	// No package prefix: this text reaches people (tern send, tern queue list, reports), so it
	// says which step failed in their words; the fields carry the rest.
	var b strings.Builder
	switch e.Command {
	case "":
	case CmdConnect:
		b.WriteString("connecting: ")
	default:
		b.WriteString(e.Command)
		b.WriteString(": ")
	}
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code))
		if e.Enhanced != "" {
			b.WriteString(" " + e.Enhanced)
		}
		if e.Text != "" {
			b.WriteString(" " + strings.ReplaceAll(e.Text, "\n", " / "))
		}
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "smtpclient: "))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the failure may go away: the opposite of Permanent.
func (e *Error) Temporary() bool { return !e.Permanent }

// IsPermanent reports whether err is an *Error classified permanent. Any other error (a
// cancelled context, say) is temporary.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// Reply is the server's reply in e, in the form of smtp.Reply (Enh without its class digit);
// the zero Reply when no reply said anything.
func (e *Error) Reply() smtp.Reply {
	_, enh, _ := strings.Cut(e.Enhanced, ".")
	return smtp.Reply{Code: e.Code, Enh: enh, Text: e.Text}
}
