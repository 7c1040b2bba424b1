// Package msghdr adds the Date: and Message-ID: fields a message lacks (RFC 6409 §8.2, §8.3),
// while the message streams from the client to the spool. It scans only the header section,
// holding back at most the start of one line (a field name, up to MaxName octets) to decide
// where the section ends; the body passes through untouched, and nothing else is buffered.
//
// The fields are added at the end of the header section, as Postfix's cleanup does: that point
// is known as soon as the section ends, so the message never has to be held in memory; the top
// (next to the Received field written before the message) would mean holding the whole header
// section, of any size, until its end. DKIM does not mind either place: a signature covers
// fields by name, and a signer that covered an absent Date or Message-ID is broken by adding
// it wherever it goes (which is why Postfix does this only for its own clients, and tern only
// where policy says so).
//
// The section ends at the first empty line, at the first line that is not a header field
// (neither "name:" nor a folded continuation), or at the end of the message (a message of
// header fields only, or an empty one). A field counts whatever the case of its name, folded or
// not; Resent-Date and Resent-Message-ID do not count. This package decides nothing: the caller
// asks policy whether to add the fields at all.
//
// A Remover, in the same streaming style, takes the Authentication-Results fields that claim
// tern's authserv-id out of a received message's header section (RFC 8601 §5), and a Tap keeps
// the values of the fields of one name (the From field DMARC needs) without changing anything.
package msghdr

import (
	"crypto/rand"
	"errors"
	"io"
	"time"
)

// MaxName is the longest field name looked at: a line whose first MaxName octets hold no colon
// is not a header field, and ends the header section.
const MaxName = 998

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("msghdr: write after close")

// Fields are the values of the fields to add when missing, without the field name or CRLF.
type Fields struct {
	Date      string
	MessageID string
}

// scanner states, within the header section.
const (
	lineStart = iota // at the start of a line
	lineCR           // a CR at the start of a line: an empty line if LF follows
	inName           // in what may be a field name (held back)
	nameWSP          // white space after a field name, before the colon (held back)
	inLine           // in a header field or a continuation line, after the name
	body             // the header section is over
	closed
)

// Adder is an io.Writer that copies a message to W, adding the missing fields at the end of its
// header section. Close must be called at the end of the message (it adds the fields to a
// message that has no body).
type Adder struct {
	w      io.Writer
	fields Fields
	state  int
	held   []byte // the start of a line whose kind is not known yet
	seen   struct{ date, msgID bool }
	added  int64
}

// NewAdder returns an Adder writing to w.
func NewAdder(w io.Writer, f Fields) *Adder { return &Adder{w: w, fields: f} }

// Added returns the number of octets the Adder added to the message.
func (a *Adder) Added() int64 { return a.added }

// Write copies p, adding the missing fields when p holds the end of the header section.
func (a *Adder) Write(p []byte) (int, error) {
	if a.state == closed {
		return 0, ErrClosed
	}
	if a.state == body {
		return a.w.Write(p)
	}
	start := 0 // p[start:i] is to be written as it is
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch a.state {
		case lineStart:
			switch {
			case c == '\r':
				if err := a.write(p[start:i]); err != nil {
					return 0, err
				}
				start = i + 1
				a.state = lineCR
			case c == '\n': // an empty line ended by a bare LF (binary content only)
				return a.endSection(p, start, i)
			case c == ' ' || c == '\t':
				a.state = inLine // a folded continuation
			case isFtext(c):
				if err := a.write(p[start:i]); err != nil {
					return 0, err
				}
				start = i + 1
				a.held = append(a.held[:0], c)
				a.state = inName
			default:
				return a.endSection(p, start, i)
			}
		case lineCR:
			a.held = append(a.held[:0], '\r')
			if c == '\n' {
				a.held = a.held[:0]
				// The empty line: the fields go in front of it.
				if err := a.addFields(); err != nil {
					return 0, err
				}
				a.state = body
				if err := a.write([]byte("\r")); err != nil { // the CR held back
					return 0, err
				}
				n, err := a.w.Write(p[i:])
				return i + n, err
			}
			return a.endSection(p, i, i)
		case inName, nameWSP:
			switch {
			case c == ':':
				a.field(a.held)
				if err := a.write(a.held); err != nil {
					return 0, err
				}
				a.held = a.held[:0]
				start = i
				a.state = inLine
			case len(a.held) >= MaxName:
				return a.endSection(p, i, i)
			case c == ' ' || c == '\t':
				a.held = append(a.held, c)
				a.state = nameWSP
			case a.state == inName && isFtext(c):
				a.held = append(a.held, c)
			default: // not a header field: the section ended before this line
				return a.endSection(p, i, i)
			}
		case inLine:
			if c == '\n' {
				a.state = lineStart
			}
		}
	}
	if a.state != inName && a.state != nameWSP { // else p[start:] is held
		if err := a.write(p[start:]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// endSection ends the header section before the current line: it adds the missing fields,
// then writes the held start of the line and p[from:] as they are. p[start:at] is written
// first: it came before the line.
func (a *Adder) endSection(p []byte, start, at int) (int, error) {
	if err := a.write(p[start:at]); err != nil {
		return 0, err
	}
	if err := a.addFields(); err != nil {
		return 0, err
	}
	a.state = body
	if err := a.write(a.held); err != nil {
		return 0, err
	}
	n, err := a.w.Write(p[at:])
	return at + n, err
}

// Close ends the message. If it ended inside the header section, the missing fields are added
// at its end: after a CRLF when its last line is a header field without one, before its last
// line when that is an unfinished line that is no header field. Close does not close W.
func (a *Adder) Close() error {
	state := a.state
	a.state = closed
	switch state {
	case body, closed:
		return nil
	case lineStart:
		return a.addFields()
	case inLine:
		if err := a.add("\r\n"); err != nil {
			return err
		}
		return a.addFields()
	}
	if err := a.addFields(); err != nil {
		return err
	}
	if state == lineCR {
		a.held = append(a.held[:0], '\r')
	}
	return a.write(a.held)
}

// field notes a field name (what precedes the colon, white space included).
func (a *Adder) field(name []byte) {
	switch {
	case nameIs(name, "Date"):
		a.seen.date = true
	case nameIs(name, "Message-ID"):
		a.seen.msgID = true
	}
}

func (a *Adder) addFields() error {
	if !a.seen.date && a.fields.Date != "" {
		if err := a.add("Date: " + a.fields.Date + "\r\n"); err != nil {
			return err
		}
	}
	if !a.seen.msgID && a.fields.MessageID != "" {
		return a.add("Message-ID: " + a.fields.MessageID + "\r\n")
	}
	return nil
}

func (a *Adder) add(s string) error {
	if _, err := io.WriteString(a.w, s); err != nil {
		return err
	}
	a.added += int64(len(s))
	return nil
}

func (a *Adder) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := a.w.Write(b)
	return err
}

// isFtext reports whether c may be in a field name (RFC 5322 §3.6.8).
func isFtext(c byte) bool { return c >= 33 && c <= 126 && c != ':' }

// Date formats t as Postfix does: RFC 5322 §3.3, with the zone's name as a comment
// ("Sat, 5 Dec 2026 03:34:51 +0000 (UTC)"). t's location is kept: the server's local time.
func Date(t time.Time) string { return t.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)") }

// MessageID returns a Message-ID (RFC 5322 §3.6.4) unique to this server: the time, the queue
// id and 80 random bits, at host.
func MessageID(t time.Time, queueID, host string) string {
	return "<" + t.UTC().Format("20060102150405") + "." + queueID + "." + rand.Text()[:16] + "@" + host + ">"
}
