package msghdr

import (
	"bytes"
	"io"
	"strings"
)

// MaxLine bounds what the Remover holds: a header line, and an Authentication-Results field
// with its continuation lines. Text lines are at most 1000 octets (RFC 5321 §4.5.3.1.6); only
// binary content (BDAT BODY=BINARYMIME) can go past it.
const MaxLine = 64 << 10

// Remover is an io.Writer that copies a message to W without the Authentication-Results fields
// of its header section that claim authServID (RFC 8601 §5: a forged result must not reach a
// reader who trusts that id). It holds at most one line, and one Authentication-Results field
// while it reads its authserv-id; other fields and the body pass through. A field whose id
// cannot be read within MaxLine octets is removed too: no honest field needs that much room.
type Remover struct {
	w       io.Writer
	id      string
	line    []byte // the current header line, up to MaxLine octets
	field   []byte // the Authentication-Results field held, lines included
	holding bool   // field holds an Authentication-Results field
	state   int    // rmHeader, rmPassLine, rmDropLine or rmBody
	removed int64
}

// Remover states.
const (
	rmHeader   = iota // reading the header section line by line
	rmPassLine        // the rest of an over-long line passes through
	rmDropLine        // the rest of an over-long line of a removed field is dropped
	rmBody            // the header section is over
)

// NewRemover returns a Remover for the authserv-id id, writing to w.
func NewRemover(w io.Writer, id string) *Remover { return &Remover{w: w, id: id} }

// Removed returns the number of octets removed.
func (r *Remover) Removed() int64 { return r.removed }

// Write copies p, removing what is to be removed.
func (r *Remover) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch r.state {
		case rmBody:
			if _, err := r.w.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		case rmPassLine, rmDropLine:
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i+1]
			}
			if r.state == rmDropLine {
				r.removed += int64(len(chunk))
			} else if _, err := r.w.Write(chunk); err != nil {
				return 0, err
			}
			p = p[len(chunk):]
			if i >= 0 {
				r.state = rmHeader
			}
		default:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				room := MaxLine - len(r.line)
				if len(p) <= room {
					r.line = append(r.line, p...)
					return n, nil
				}
				r.line = append(r.line, p[:room]...)
				p = p[room:]
				if err := r.overflow(); err != nil {
					return 0, err
				}
				continue
			}
			if len(r.line)+i+1 > MaxLine {
				room := MaxLine - len(r.line)
				r.line = append(r.line, p[:room]...)
				p = p[room:]
				if err := r.overflow(); err != nil {
					return 0, err
				}
				continue
			}
			r.line = append(r.line, p[:i+1]...)
			p = p[i+1:]
			if err := r.endLine(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// overflow handles a line longer than MaxLine: one of a field being removed (or of an
// Authentication-Results field too long to read) is dropped to its end, any other passes.
func (r *Remover) overflow() error {
	cont := r.line[0] == ' ' || r.line[0] == '\t'
	if !cont {
		if err := r.flush(); err != nil {
			return err
		}
	}
	if cont && r.holding || !cont && isARName(r.line) {
		r.removed += int64(len(r.field) + len(r.line))
		r.field, r.line, r.holding = r.field[:0], r.line[:0], false
		r.state = rmDropLine
		return nil
	}
	if err := r.write(r.line); err != nil {
		return err
	}
	r.state = rmPassLine
	if !cont && !isField(r.line) {
		r.state = rmBody
	}
	r.line = r.line[:0]
	return nil
}

// endLine handles a whole header line.
func (r *Remover) endLine() error {
	line := r.line
	r.line = r.line[:0]
	switch {
	case line[0] == ' ' || line[0] == '\t': // a continuation
		if !r.holding {
			return r.write(line)
		}
		if len(r.field)+len(line) > MaxLine {
			r.removed += int64(len(r.field) + len(line))
			r.field, r.holding = r.field[:0], false
			return nil
		}
		r.field = append(r.field, line...)
		return nil
	}
	if err := r.flush(); err != nil {
		return err
	}
	switch {
	case line[0] == '\n' || line[0] == '\r' && len(line) == 2: // the empty line
		r.state = rmBody
		return r.write(line)
	case isARName(line):
		r.field = append(r.field[:0], line...)
		r.holding = true
		return nil
	case !isField(line):
		r.state = rmBody
	}
	return r.write(line)
}

// flush ends the held field: removed when it claims our id, else written.
func (r *Remover) flush() error {
	if !r.holding {
		return nil
	}
	r.holding = false
	f := r.field
	r.field = r.field[:0]
	if claims(f, r.id) {
		r.removed += int64(len(f))
		return nil
	}
	return r.write(f)
}

// Close ends the message: a held field or an unfinished line is dealt with as if the message
// ended with a line end. Close does not close W.
func (r *Remover) Close() error {
	if r.state != rmHeader {
		return nil
	}
	if len(r.line) > 0 {
		if err := r.endLine(); err != nil {
			return err
		}
	}
	r.state = rmBody
	return r.flush()
}

func (r *Remover) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := r.w.Write(b)
	return err
}

// isField reports whether line starts with a field name and its colon.
func isField(line []byte) bool {
	_, ok := fieldName(line)
	return ok
}

// fieldName returns the name of the field line starts, without trailing white space. It is a
// part of line, not a copy: this runs for every header line of every message.
func fieldName(line []byte) ([]byte, bool) {
	i := 0
	for i < len(line) && i < MaxName && isFtext(line[i]) {
		i++
	}
	j := i
	for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
		j++
	}
	if i == 0 || j >= len(line) || line[j] != ':' {
		return nil, false
	}
	return line[:i], true
}

func isARName(line []byte) bool {
	n, ok := fieldName(line)
	return ok && nameIs(n, "Authentication-Results")
}

// nameIs reports whether the field name n (trailing white space allowed) is name, compared
// without case as RFC 5322 field names are, and without copying n.
func nameIs(n []byte, name string) bool {
	n = bytes.TrimRight(n, " \t")
	if len(n) != len(name) {
		return false
	}
	for i := range n {
		if lower(n[i]) != lower(name[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// claims reports whether the Authentication-Results field f names id as its authserv-id (RFC
// 8601 §2.2: the first value after the colon, after any comments and folding white space).
// A field whose id cannot be read claims it: it is removed.
func claims(f []byte, id string) bool {
	got, ok := AuthServID(f[bytes.IndexByte(f, ':')+1:])
	return !ok || strings.EqualFold(got, id)
}

// AuthServID reads the authserv-id at the start of an Authentication-Results value: a token or
// a quoted-string, after CFWS. ok is false when there is none.
func AuthServID(v []byte) (id string, ok bool) {
	i := skipCFWS(v, 0)
	if i < 0 || i >= len(v) {
		return "", false
	}
	if v[i] == '"' {
		var b strings.Builder
		for i++; i < len(v); i++ {
			switch c := v[i]; c {
			case '"':
				return b.String(), true
			case '\\':
				i++
				if i < len(v) {
					b.WriteByte(v[i])
				}
			case '\r', '\n':
			default:
				b.WriteByte(c)
			}
		}
		return "", false
	}
	j := i
	for j < len(v) && !strings.ContainsRune(" \t\r\n;()\"", rune(v[j])) {
		j++
	}
	if j == i {
		return "", false
	}
	return string(v[i:j]), true
}

// skipCFWS returns the index past white space and (nested) comments from i, or -1 for an
// unclosed comment.
func skipCFWS(v []byte, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch c := v[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return i
		}
	}
	if depth > 0 {
		return -1
	}
	return i
}
