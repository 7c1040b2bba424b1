package msghdr

import "bytes"

// MaxTapField bounds the value of a field a Tap keeps: a From field of a few hundred addresses
// fits; one that does not is kept as empty, which its reader takes as unreadable.
const MaxTapField = 8 << 10

// Tap is an io.Writer that keeps the values of the fields called Name (with their
// continuation lines, CRLFs included) from the header section of the message written to it,
// as it streams: DMARC reads the From field this way without holding the message. It holds at
// most one line (up to MaxTapField octets) and the values of the first two such fields (a
// reader needs to know that there are several, not what they say); it ignores the body. The
// header section ends as the Adder's does.
type Tap struct {
	name    string
	line    []byte
	long    bool // the current line is past MaxTapField: only its start is in line
	in      int  // the index in fields of the field being read, or -1
	fields  []string
	n       int // fields of that name seen
	body    bool
	started bool // a line was seen: a continuation line needs a field before it
}

// NewTap returns a Tap for the fields called name (compared without case).
func NewTap(name string) *Tap { return &Tap{name: name, in: -1} }

// Fields returns the values of the fields seen so far, at most two, each after its colon; a
// value that was too long is empty. Count says how many there were.
func (t *Tap) Fields() []string {
	if len(t.line) > 0 && !t.body {
		t.endLine() // a message that ends inside its header section, without a line break
	}
	t.endField()
	return t.fields
}

// Count is the number of fields called Name seen so far.
func (t *Tap) Count() int { return t.n }

// Write never fails.
func (t *Tap) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !t.body {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		p = p[len(chunk):]
		if room := MaxTapField - len(t.line); len(chunk) > room {
			t.line = append(t.line, chunk[:room]...)
			t.long = true
		} else {
			t.line = append(t.line, chunk...)
		}
		if i >= 0 {
			t.endLine()
		}
	}
	return n, nil
}

func (t *Tap) endLine() {
	line, long := t.line, t.long
	t.line, t.long = t.line[:0], false
	switch {
	case (line[0] == ' ' || line[0] == '\t') && t.started:
		if t.in >= 0 {
			t.appendValue(line, long)
		}
		return
	case bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")):
		t.endField()
		t.body = true
		return
	}
	name, ok := fieldName(line)
	if !ok {
		t.endField()
		t.body = true
		return
	}
	t.started = true
	t.endField()
	if !nameIs(name, t.name) {
		return
	}
	t.n++
	if len(t.fields) < 2 {
		t.fields = append(t.fields, "")
		t.in = len(t.fields) - 1
		t.appendValue(line[bytes.IndexByte(line, ':')+1:], long)
	}
}

// appendValue adds a line of the field being read, which becomes empty once it is too long.
func (t *Tap) appendValue(b []byte, long bool) {
	v := &t.fields[t.in]
	if long || len(*v)+len(b) > MaxTapField || *v == "\x00" {
		*v = "\x00" // too long: marked until the field ends
		return
	}
	*v += string(b)
}

func (t *Tap) endField() {
	if t.in >= 0 && t.fields[t.in] == "\x00" {
		t.fields[t.in] = ""
	}
	t.in = -1
}
