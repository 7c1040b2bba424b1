// Package delivery defines how the queue hands one message to one recipient's destination, and the
// classified error a destination returns. Destinations live in sub-packages (maildir; later lmtp and
// remote). A deliverer must be safe for concurrent use; it must make the message durable before it
// returns nil, because the queue forgets the recipient as soon as it does.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

// Deliverer delivers a message body to one recipient of env.
type Deliverer interface {
	// Deliver stores or forwards body for env.Rcpts[rcpt]. A nil error means the message is durable
	// at its destination. Any other error should be an *Error; one that is not is taken as
	// temporary, since an unknown failure must never lose mail.
	Deliver(ctx context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error
}

// Error is a classified delivery failure.
type Error struct {
	// Permanent failures are not retried (they become bounces); temporary ones are.
	Permanent bool
	// Code and Enh are the SMTP reply that describes the failure (e.g. 550 and "1.1" for
	// 550 5.1.1), from a remote server or chosen by a local deliverer. Enh is in the form of
	// smtp.Reply's (one of the smtp.Enh constants, or a server's): the class follows Code.
	Code int
	Enh  string
	// Msg is the human-readable text, safe to show in a bounce. When a remote server refused,
	// Code, Enh and Msg are its reply as it sent it, so that "Code Enhanced() Msg" is the
	// DSN's Diagnostic-Code (RFC 3464 §2.3.6).
	Msg string
	// RemoteReply is set when Code, Enh and Msg are a server's reply as it sent it (see
	// Refused). Otherwise tern found the failure itself (no such domain, a TLS policy, a
	// timeout), and Msg says so in its own words: a report must not pass that off as a
	// remote server's reply.
	RemoteReply bool
	// RemoteMTA is the server whose reply (or whose missing capability) decided the failure;
	// empty when no remote server was involved (a DNS failure, a local deliverer). The DSN's
	// Remote-MTA names it only with a RemoteReply (RFC 3464 §2.3.5: the MTA that reported).
	RemoteMTA string
	// Err is the underlying cause, for logs only.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s %s", e.Code, e.Enhanced(), e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Enhanced is the full enhanced status code ("5.1.1"), as smtp.Reply's.
func (e *Error) Enhanced() string { return smtp.Enhanced(e.Code, e.Enh) }

// Reply is the failure as an SMTP reply.
func (e *Error) Reply() smtp.Reply { return smtp.R(e.Code, e.Enh, e.Msg) }

// EnhRequireTLSTemp is the enhanced status, as a Failure records it, of a REQUIRETLS message
// for which no host took the message over the TLS it asks for, while some host may still do
// so later (smtp.EnhRequireTLS with a 4xx, RFC 8689 §5). The queue reports it as 5.7.30 when
// the message expires, not as a generic expiry.
const EnhRequireTLSTemp = "4." + smtp.EnhRequireTLS

// Temporary returns a temporary *Error (451 4.3.0) wrapping cause.
func Temporary(msg string, cause error) *Error {
	return &Error{Code: smtp.CodeLocalError, Enh: smtp.EnhSystemOther, Msg: msg, Err: cause}
}

// Refused is the outcome of a server's reply r that refused (a 4xx or 5xx): permanent for a
// 5xx, with the server's enhanced code (X.0.0 when it gave none) and its text on one line, the
// server's own words for the DSN's Diagnostic-Code (RFC 3464 §2.3.6). cause says, for the
// log, who said it.
func Refused(r smtp.Reply, cause error) *Error {
	code, text, enh := r.Code, r.Text, r.Enh
	if enh == "" {
		enh = smtp.EnhOther
	}
	return &Error{Permanent: code >= 500, Code: code, Enh: enh,
		Msg: strings.ReplaceAll(text, "\n", " "), RemoteReply: true, Err: cause}
}

// Failure is err as a report may show it to the sender, and as the queue keeps it for a
// later report (tern queue bounce). An unclassified error is a temporary failure without
// detail: its text is for the log only.
func Failure(err error) *envelope.Failure {
	var de *Error
	if !errors.As(err, &de) {
		return &envelope.Failure{Code: smtp.CodeLocalError, Enhanced: smtp.Enhanced(smtp.CodeLocalError, smtp.EnhOther),
			Text: "delivery failed"}
	}
	f := &envelope.Failure{Code: de.Code, Enhanced: de.Enhanced(), Text: de.Msg, Reply: de.RemoteReply}
	if de.RemoteReply {
		f.RemoteMTA = de.RemoteMTA
	}
	return f
}

// Permanentf returns a permanent *Error with the given reply code and enhanced code (an
// smtp.Enh constant).
func Permanentf(code int, enh, format string, args ...any) *Error {
	return &Error{Permanent: true, Code: code, Enh: enh, Msg: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err is a permanent delivery failure. Unclassified errors are not.
func IsPermanent(err error) bool {
	var de *Error
	return errors.As(err, &de) && de.Permanent
}

// BatchDeliverer delivers one message to several recipients at once: a remote server takes all
// recipients of a domain in one transaction, an LMTP server answers each recipient after one
// DATA. The queue prefers it to Deliverer when a deliverer has both.
type BatchDeliverer interface {
	// DeliverBatch tries env.Rcpts[i] for each i in rcpts and returns one Outcome per entry of
	// rcpts, in the same order. It must not retry: the queue does.
	DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body Body) []Outcome
}

// Body gives a deliverer the message as often as it needs it (once per attempt or per host).
type Body interface {
	Open() (io.ReadCloser, error)
	Size() int64
}

// Outcome is the result of delivering to one recipient.
type Outcome struct {
	// Err is nil when the recipient is done; otherwise an *Error (an unclassified one is taken
	// as temporary).
	Err error
	// RemoteMTA is the host that accepted or refused the message, for logs and DSNs.
	RemoteMTA string
	// Relayed is set when the message went to a server that does not do DSN (RFC 3461 §5.2.2):
	// a NOTIFY=SUCCESS report is then ours to send, with Action "relayed".
	Relayed bool
}
