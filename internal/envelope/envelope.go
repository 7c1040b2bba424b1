// Package envelope holds the SMTP envelope of one accepted message: who sent it, to whom, with
// which ESMTP parameters, and how far delivery to each recipient has come.
//
// It is the contract between the session (which fills it in), the queue (which stores it next to
// the body and keeps the per-recipient state) and the deliverers (which read it). It does no I/O
// and holds no policy.
package envelope

import (
	"strings"
	"time"
)

// Body is the body type declared with MAIL FROM's BODY= parameter (RFC 6152, RFC 3030).
type Body string

const (
	Body7Bit       Body = "7BIT"
	Body8BitMIME   Body = "8BITMIME"
	BodyBinaryMIME Body = "BINARYMIME"
)

// Status is how far delivery to one recipient has come. Only Delivered and Failed are final.
type Status string

const (
	Pending   Status = ""
	Delivered Status = "delivered"
	Failed    Status = "failed"
)

// Recipient is one RCPT TO with its DSN parameters (RFC 3461) and its delivery state.
type Recipient struct {
	// Addr is the address as accepted, local part as the client sent it, domain lower-cased.
	Addr string `json:"addr"`
	// Notify is the RFC 3461 NOTIFY list ("NEVER", or some of "SUCCESS", "FAILURE", "DELAY");
	// empty when the client gave none.
	Notify []string `json:"notify,omitempty"`
	// ORcpt is the RFC 3461 ORCPT parameter, decoded from xtext ("rfc822;bob@example.com").
	ORcpt string `json:"orcpt,omitempty"`
	// Status is the delivery state; Pending until a deliverer reports a final outcome.
	Status Status `json:"status,omitempty"`
	// LastError is the text of the last failed attempt, for the operator (`tern queue list`):
	// it may name local paths, so a bounce must take its text from the classified error instead.
	LastError string `json:"last_error,omitempty"`
	// LastFailure is the last failed attempt as a report may show it (tern queue bounce
	// quotes it); nil when there was none, or before tern kept it.
	LastFailure *Failure `json:"last_failure,omitempty"`
}

// Failure is a failed delivery attempt as a report may show it to the sender: no local paths,
// no log detail, and who said it.
type Failure struct {
	// Code and Enhanced are the reply code and enhanced status code ("451", "4.4.1").
	Code     int    `json:"code"`
	Enhanced string `json:"enh,omitempty"`
	// Text is the server's reply text when Reply is set; otherwise tern's own words for what it
	// found ("cannot connect to mx.example.com").
	Text string `json:"text,omitempty"`
	// Reply is set when Code, Enhanced and Text are a server's reply as it sent it, and
	// RemoteMTA is then that server (empty for the local LMTP server).
	Reply     bool   `json:"reply,omitempty"`
	RemoteMTA string `json:"rmta,omitempty"`
}

// Envelope is everything the queue stores about a message besides its body.
type Envelope struct {
	// ID is the queue id given in "250 2.0.0 Ok: queued as ID".
	ID string `json:"id"`
	// From is the reverse-path; empty for the null sender <>.
	From string `json:"from"`
	// Body is the BODY= parameter; empty when the client gave none (7BIT is then implied).
	Body Body `json:"body,omitempty"`
	// SMTPUTF8 is set when MAIL FROM carried the SMTPUTF8 parameter (RFC 6531).
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
	// Ret is the RFC 3461 RET parameter ("FULL" or "HDRS"), EnvID its ENVID, decoded from xtext.
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
	// Rcpts are the accepted recipients, in the order they were accepted.
	Rcpts []Recipient `json:"rcpts"`
	// Received is when the message was accepted.
	Received time.Time `json:"received"`
	// ClientIP, Helo and AuthUser describe the submitting session for logs and bounces.
	ClientIP string `json:"client_ip,omitempty"`
	Helo     string `json:"helo,omitempty"`
	AuthUser string `json:"auth_user,omitempty"`
	// Size is the size of the stored body in octets (with the Received header tern added).
	Size int64 `json:"size"`
	// Prepend is header fields written before the stored body at delivery, CRLF-ended: what
	// tern learns only once the body is in (its Authentication-Results field) but must put at
	// the top, next to its Received field. Size counts it.
	Prepend string `json:"prepend,omitempty"`
	// Quarantine is set when the message failed DMARC and policy quarantines it: a local
	// mailbox gets it in its Junk folder, an LMTP server with a header that marks it as spam.
	Quarantine bool `json:"quarantine,omitempty"`
	// RequireTLS is set when MAIL FROM carried REQUIRETLS (RFC 8689): the message may only
	// leave over verified TLS.
	RequireTLS bool `json:"requiretls,omitempty"`
	// Held is set while an administrator holds the message (tern queue hold): it is not
	// delivered until released.
	Held bool `json:"held,omitempty"`
	// DelayNotified is set once the sender was told that delivery is delayed, so they are told
	// only once.
	DelayNotified bool `json:"delay_notified,omitempty"`
	// Attempts counts the delivery attempts so far, and NextAttempt is when the next one is due
	// after a temporary failure: both survive a restart, so that a restart neither retries every
	// deferred message at once nor starts their backoff over.
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Done reports whether every recipient has a final status.
func (e *Envelope) Done() bool {
	for _, r := range e.Rcpts {
		if r.Status == Pending {
			return false
		}
	}
	return true
}

// Clone returns a deep copy, so that a deliverer or a listing never races with the queue.
func (e *Envelope) Clone() *Envelope {
	c := *e
	c.Rcpts = make([]Recipient, len(e.Rcpts))
	for i, r := range e.Rcpts {
		r.Notify = append([]string(nil), r.Notify...)
		c.Rcpts[i] = r
	}
	return &c
}

// Domain is the domain of an address of the envelope (everything after its last '@'),
// lower-cased: what routing and per-domain grouping go by.
func Domain(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}
