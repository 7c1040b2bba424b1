// Package dsn writes delivery status notifications (RFC 3464, with the DSN extension's
// parameters of RFC 3461): the bounce that keeps the promise of a 250 when a message cannot be
// delivered, the "still trying" notice for a delayed one, and the success report a sender asked
// for with NOTIFY=SUCCESS.
//
// It only formats: deciding when a notice is due is the queue's job, sending it is the queue's
// too (a DSN is queued like any message, from the null sender, so it can never cause another).
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Action is a recipient's Action field (RFC 3464 §2.3.3).
type Action string

const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
)

// Recipient is one per-recipient block of the report.
type Recipient struct {
	// Final is the recipient address as tern tried to deliver to it.
	Final string
	// Original is the ORCPT parameter ("rfc822;bob@example.com"), decoded; empty if none.
	Original string
	Action   Action
	// Status is the enhanced status code, e.g. "5.1.1".
	Status string
	// RemoteMTA is the server that accepted the message, or whose Reply decided the outcome
	// (Remote-MTA, RFC 3464 §2.3.5).
	RemoteMTA string
	// Reply is a server's own reply that decided the outcome, as it sent it ("550 5.1.1 User
	// unknown"): "Diagnostic-Code: smtp;" (RFC 3464 §2.3.6) is for nothing else.
	Reply string
	// Note is what tern itself found, in plain words ("the domain nx.example does not exist",
	// "returned to sender by the administrator"). Without a Reply it is the Diagnostic-Code,
	// of type X-Tern (as Postfix writes X-Postfix); with one, the Reply is what the last
	// attempt got.
	Note string
	// LastAttempt is when delivery was last tried; WillRetryUntil, for delayed recipients, when
	// tern will give up.
	LastAttempt, WillRetryUntil time.Time
}

// Report is one notification about one message.
type Report struct {
	// ReportingMTA is tern's host name.
	ReportingMTA string
	// QueueID is the message's queue id (X-Tern-Queue-ID, as Postfix gives its own).
	QueueID string
	// EnvID is the ENVID parameter of the original MAIL FROM, decoded; empty if none.
	EnvID string
	// Arrival is when tern accepted the message.
	Arrival time.Time
	// To is the original envelope sender, who gets the report.
	To string
	// Recipients are the recipients the report is about; all must share one kind of Action
	// (a failure report, a delay report or a success report).
	Recipients []Recipient
	// Ret is the RET parameter: "HDRS" returns only the headers, "FULL" or "" the whole message
	// up to MaxReturn octets.
	Ret string
	// MaxReturn bounds the returned original; beyond it only the headers come back. Zero means
	// DefaultMaxReturn.
	MaxReturn int64
	// Now is the report's Date; zero means time.Now.
	Now time.Time
}

// DefaultMaxReturn is how much of an original message a report returns (Postfix returns 50000
// octets; tern a little more, since attachments made messages larger).
const DefaultMaxReturn = 100 << 10

// ErrNoRecipients is returned for a report about nobody.
var ErrNoRecipients = errors.New("dsn: report without recipients")

// Wants reports whether a recipient's NOTIFY list (RFC 3461 §4.1) asks for a report of this
// action. Without NOTIFY, failures and delays are reported and successes are not.
func Wants(notify []string, a Action) bool {
	if len(notify) == 0 {
		return a == Failed || a == Delayed
	}
	want := map[Action]string{Failed: "FAILURE", Delayed: "DELAY", Delivered: "SUCCESS", Relayed: "SUCCESS"}[a]
	for _, n := range notify {
		if strings.EqualFold(n, "NEVER") {
			return false
		}
		if strings.EqualFold(n, want) {
			return true
		}
	}
	return false
}

// Write writes the report as a complete message with CRLF line ends, returning the original
// message read from orig (which may be nil) as RET says.
func (r *Report) Write(w io.Writer, orig io.Reader) error {
	if len(r.Recipients) == 0 {
		return ErrNoRecipients
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	boundary, err := randomToken(12)
	if err != nil {
		return err
	}
	msgID, err := randomToken(8)
	if err != nil {
		return err
	}
	action := r.Recipients[0].Action
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\r\n", args...) }

	p("From: Mail Delivery System <MAILER-DAEMON@%s>", r.ReportingMTA)
	p("To: <%s>", r.To)
	p("Subject: %s", subject(action))
	p("Date: %s", now.Format(time.RFC1123Z))
	p("Message-ID: <%s.%s@%s>", now.UTC().Format("20060102150405"), msgID, r.ReportingMTA)
	// RFC 3834: an automatic reply; vacation programs and the like must not answer it.
	p("Auto-Submitted: auto-replied")
	p("MIME-Version: 1.0")
	p(`Content-Type: multipart/report; report-type=delivery-status; boundary="%s"`, boundary)
	p("")
	p("This is a MIME-encapsulated message.")
	p("")

	p("--%s", boundary)
	p("Content-Description: Notification")
	p("Content-Type: text/plain; charset=utf-8")
	p("")
	r.writeHuman(p, action)
	p("")

	p("--%s", boundary)
	p("Content-Description: Delivery report")
	p("Content-Type: message/delivery-status")
	p("")
	p("Reporting-MTA: dns; %s", r.ReportingMTA)
	p("X-Tern-Queue-ID: %s", r.QueueID)
	if r.EnvID != "" {
		p("Original-Envelope-Id: %s", headerSafe(r.EnvID))
	}
	if !r.Arrival.IsZero() {
		p("Arrival-Date: %s", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		p("")
		p("Final-Recipient: rfc822; %s", headerSafe(rc.Final))
		if rc.Original != "" {
			p("Original-Recipient: %s", headerSafe(rc.Original))
		}
		p("Action: %s", rc.Action)
		p("Status: %s", rc.Status)
		if rc.RemoteMTA != "" {
			p("Remote-MTA: dns; %s", headerSafe(rc.RemoteMTA))
		}
		switch {
		case rc.Reply != "":
			p("Diagnostic-Code: smtp; %s", headerSafe(rc.Reply))
		case rc.Note != "":
			p("Diagnostic-Code: X-Tern; %s", headerSafe(rc.Note))
		}
		if !rc.LastAttempt.IsZero() {
			p("Last-Attempt-Date: %s", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			p("Will-Retry-Until: %s", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	p("")

	if orig != nil {
		if err := r.writeOriginal(bw, p, boundary, orig); err != nil {
			return err
		}
	}
	p("--%s--", boundary)
	return bw.Flush()
}

func subject(a Action) string {
	switch a {
	case Delayed:
		return "Delayed Mail (still being retried)"
	case Delivered, Relayed:
		return "Successful Mail Delivery Report"
	}
	return "Undelivered Mail Returned to Sender"
}

// writeHuman writes the part people read.
func (r *Report) writeHuman(p func(string, ...any), a Action) {
	p("This is the mail system at host %s.", r.ReportingMTA)
	p("")
	switch a {
	case Delayed:
		p("Your message could not be delivered yet to the recipients below.")
		p("The mail system will keep trying; you do not need to send it again.")
	case Delivered, Relayed:
		p("Your message was delivered to the recipients below, as you asked.")
	default:
		p("I'm sorry to have to inform you that your message could not")
		p("be delivered to one or more recipients. It's attached below.")
	}
	if a == Failed || a == Delayed {
		p("")
		p("Where a server's reply is quoted (\"host ... said\"), it is that server's own")
		p("words; everything else is what this mail system found itself.")
	}
	p("")
	for _, rc := range r.Recipients {
		p("%s", humanLine(rc))
	}
}

// humanLine is one recipient's line in the part people read.
func humanLine(rc Recipient) string {
	line := "<" + headerSafe(rc.Final) + ">"
	said := ""
	switch {
	case rc.Reply != "" && rc.RemoteMTA != "":
		said = "host " + headerSafe(rc.RemoteMTA) + " said: " + headerSafe(rc.Reply)
	case rc.Reply != "":
		said = "the mailbox server said: " + headerSafe(rc.Reply)
	}
	switch {
	case rc.Note != "" && said != "":
		return line + ": " + headerSafe(rc.Note) + "; last attempt: " + said
	case rc.Note != "":
		return line + ": " + headerSafe(rc.Note)
	case said != "":
		return line + ": " + said
	case rc.RemoteMTA != "":
		return line + " (by " + headerSafe(rc.RemoteMTA) + ")"
	}
	return line
}

// writeOriginal appends the original message, or its headers, as the third part.
func (r *Report) writeOriginal(bw *bufio.Writer, p func(string, ...any), boundary string, orig io.Reader) error {
	limit := r.MaxReturn
	if limit <= 0 {
		limit = DefaultMaxReturn
	}
	// Read one octet more than the limit, to know whether the message fits.
	buf, err := io.ReadAll(io.LimitReader(orig, limit+1))
	if err != nil {
		return fmt.Errorf("dsn: reading the original message: %w", err)
	}
	headersOnly := strings.EqualFold(r.Ret, "HDRS") || int64(len(buf)) > limit
	if headersOnly {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			buf = buf[:i+2]
		} else if int64(len(buf)) > limit {
			buf = buf[:0] // no end of headers within the limit: return nothing rather than half
		}
	}
	p("--%s", boundary)
	if headersOnly {
		p("Content-Description: Undelivered Message Headers")
		p("Content-Type: text/rfc822-headers")
	} else {
		p("Content-Description: Undelivered Message")
		p("Content-Type: message/rfc822")
	}
	p("")
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	if len(buf) > 0 && !bytes.HasSuffix(buf, []byte("\r\n")) {
		p("")
	}
	p("")
	return nil
}

// headerSafe keeps a value from breaking the report's structure: no line breaks, no controls.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dsn: %w", err)
	}
	return hex.EncodeToString(b), nil
}
