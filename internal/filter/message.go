package filter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// MaxHeader bounds the header section kept in memory: what lies past it is passed on as body,
// as Postfix does with a header section past header_size_limit.
const MaxHeader = 1 << 20

// Field is one header field as stored: Raw is the whole field, name, colon, value and every
// folded line, each line ending in CRLF.
type Field struct {
	Name string
	Raw  string
}

// Value is the field's value as milters get it (and as Postfix sends it): the text after the
// colon without its leading blanks and without the last CRLF; folded lines keep their line
// breaks, as LF.
func (f Field) Value() string {
	v := strings.TrimLeft(f.Raw[len(f.Name)+1:], " \t")
	v = strings.TrimSuffix(v, "\r\n")
	return strings.ReplaceAll(v, "\r\n", "\n")
}

// Header is a message's header section.
type Header struct {
	Fields []Field
	// Sep is set when an empty line ended the section (a message that is all header has none).
	Sep bool
}

// ReadHeader reads the header section of a message from br, and returns it with the reader of
// the body: the octets after the empty line, or the first line that is not a field (Postfix's
// rule too: it starts the body) and what follows it.
func ReadHeader(br *bufio.Reader) (Header, io.Reader, error) {
	var h Header
	var cur []byte // the field being read, until a line that does not continue it
	size := 0
	flush := func() {
		if cur != nil {
			if !bytes.HasSuffix(cur, []byte("\r\n")) {
				// The last line of a message without its line end: stored mail ends in one.
				cur = append(bytes.TrimSuffix(cur, []byte("\n")), '\r', '\n')
			}
			name := string(cur[:bytes.IndexByte(cur, ':')])
			h.Fields = append(h.Fields, Field{Name: name, Raw: string(cur)})
			cur = nil
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: the stored message's lines are at most 1000
			// octets (smtp.ReadData checks), so this is no header; it starts the body.
			flush()
			return h, io.MultiReader(bytes.NewReader(bytes.Clone(line)), br), nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return h, nil, err
		}
		if len(line) == 0 {
			flush()
			return h, br, nil
		}
		size += len(line)
		switch {
		case string(line) == "\r\n" || string(line) == "\n":
			flush()
			h.Sep = true
			return h, br, nil
		case (line[0] == ' ' || line[0] == '\t') && cur != nil && size <= MaxHeader:
			cur = append(cur, line...)
		case isFieldStart(line) && size <= MaxHeader:
			flush()
			cur = append([]byte(nil), line...)
		default:
			flush()
			return h, io.MultiReader(bytes.NewReader(bytes.Clone(line)), br), nil
		}
		if err != nil { // EOF after a last line without its line end
			flush()
			return h, br, nil
		}
	}
}

// isFieldStart reports whether line starts a header field: a name of printable ASCII other
// than the colon, then a colon (RFC 5322 §2.2).
func isFieldStart(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	return validName(string(line[:i]))
}

func validName(name string) bool {
	if name == "" || len(name) > 998 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// ErrBadEdit is returned for an edit that would break the message (a field name with a
// colon, a control character).
var ErrBadEdit = errors.New("filter: bad header edit")

// newField builds a field from a filter's name and value, folding its lines with CRLF and a
// leading tab where a line lacks one, so that a value can never end the field early and start
// another (or the body).
func newField(name, value string) (Field, error) {
	if !validName(name) {
		return Field{}, ErrBadEdit
	}
	value = strings.ReplaceAll(value, "\r\n", "\n")
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	for i, line := range strings.Split(value, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.ContainsAny(line, "\r\x00") {
			return Field{}, ErrBadEdit
		}
		switch {
		case i == 0:
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				b.WriteString(" ")
			}
		case strings.TrimSpace(line) == "":
			continue // an empty line would end the header section
		default:
			b.WriteString("\r\n")
			if line[0] != ' ' && line[0] != '\t' {
				b.WriteString("\t")
			}
		}
		b.WriteString(line)
	}
	b.WriteString("\r\n")
	return Field{Name: name, Raw: b.String()}, nil
}

// Apply applies the header edits to h, in order, and returns the replacement body (nil when
// the body stays). An edit the message cannot take is skipped and reported in the error,
// after the others are applied.
func Apply(h *Header, edits []Edit) (body []byte, replaced bool, err error) {
	for _, e := range edits {
		var ferr error
		switch e.Kind {
		case AddHeader:
			var f Field
			if f, ferr = newField(e.Name, e.Value); ferr == nil {
				h.Fields = append(h.Fields, f)
			}
		case InsertHeader:
			var f Field
			if f, ferr = newField(e.Name, e.Value); ferr == nil {
				i := min(max(e.Index, 0), len(h.Fields))
				h.Fields = append(h.Fields[:i], append([]Field{f}, h.Fields[i:]...)...)
			}
		case ChangeHeader:
			ferr = h.change(e.Name, e.Index, e.Value)
		case ReplaceBody:
			body = append(body, e.Body...)
			replaced = true
		}
		if ferr != nil && err == nil {
			err = ferr
		}
	}
	return body, replaced, err
}

// change replaces (or, with an empty value, deletes) the index-th field named name; index 0
// deletes them all. A field that is not there is no error (Postfix ignores it too).
func (h *Header) change(name string, index int, value string) error {
	var f Field
	if value != "" {
		var err error
		if f, err = newField(name, value); err != nil {
			return err
		}
	}
	n := 0
	out := h.Fields[:0]
	for _, old := range h.Fields {
		if strings.EqualFold(old.Name, name) {
			n++
			if index == 0 || n == index {
				if value != "" {
					out = append(out, f)
				}
				continue
			}
		}
		out = append(out, old)
	}
	h.Fields = out
	return nil
}

// Write writes the header section and then body: the stored form of an edited message. It
// returns the octets written.
func (h Header) Write(w io.Writer, body io.Reader) (int64, error) {
	var n int64
	for _, f := range h.Fields {
		n += int64(len(f.Raw))
	}
	if h.Sep {
		n += 2
	}
	bw := bufio.NewWriter(w)
	for _, f := range h.Fields {
		bw.WriteString(f.Raw)
	}
	if h.Sep {
		bw.WriteString("\r\n")
	}
	m, err := io.Copy(bw, body)
	if err != nil {
		return n + m, err
	}
	return n + m, bw.Flush()
}

// CRLF returns b with every line ending in CRLF (a bare LF gets its CR, a bare CR is
// dropped) and a last line ended: a replacement body from a filter is stored like one that
// came over SMTP.
func CRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				out = append(out, '\r', '\n')
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		case 0:
			// NUL has no place in text (RFC 5322 §2.3); smtp.ReadData refuses it too.
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}
