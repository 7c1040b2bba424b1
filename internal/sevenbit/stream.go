package sevenbit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// conv reads a message line by line, in pieces of at most readSize octets. Without out it makes
// the plan; with out it writes the 7-bit form by the plan. Both runs walk the same structure,
// so that the n-th entity of one is the n-th of the other.
type conv struct {
	r     *bufio.Reader
	line  []byte // the piece at hand, not consumed yet; nil when none is read
	start bool   // line (or the next piece) starts a line
	whole bool   // line ends its line: with LF, or at the end of the input
	eof   bool
	// delims are the delimiters of the multiparts whose parts (or preamble) are being read,
	// outermost first: a line that is one of them ends every entity inside.
	delims [][]byte
	plan   *plan
	next   int     // the next entity's index in the plan, when writing
	open   []int   // the entities whose body is being read, when planning
	out    *output // nil when planning
}

// peek returns the piece at hand, reading one if needed: nil at the end of the input.
func (c *conv) peek() ([]byte, error) {
	if c.line != nil || c.eof {
		return c.line, nil
	}
	b, err := c.r.ReadSlice('\n')
	switch err {
	case nil:
		c.whole = true
	case bufio.ErrBufferFull:
		c.whole = false
	case io.EOF:
		if len(b) == 0 {
			c.eof = true
			return nil, nil
		}
		c.whole = true
	default:
		return nil, err
	}
	c.line = b
	return b, nil
}

// consume is done with the piece at hand. When planning, an 8-bit octet in it marks every
// entity whose body it is in.
func (c *conv) consume() {
	if c.out == nil && Has8Bit(c.line) {
		for i := len(c.open) - 1; i >= 0 && !c.plan.get(c.open[i]); i-- {
			c.plan.set(c.open[i])
		}
	}
	c.start, c.line = c.whole, nil
}

// write writes p, when writing.
func (c *conv) write(p []byte) error {
	if c.out == nil {
		return nil
	}
	_, err := c.out.Write(p)
	return err
}

// delimiter says which of c.delims the piece at hand is a delimiter line of (its index, -1 for
// none) and its kind (1 for a part delimiter, 2 for the close delimiter). The outermost wins:
// the outer multipart cut the inner one's body before that line. The piece must be peeked.
func (c *conv) delimiter() (int, int, error) {
	if !c.start || c.line == nil {
		return -1, 0, nil
	}
	for i, d := range c.delims {
		if k := delimiterKind(c.line, d); k != 0 {
			if !c.whole {
				return 0, 0, ErrLongLine // the line could still end in something else
			}
			return i, k, nil
		}
	}
	return -1, 0, nil
}

// atEnd reads the next piece and reports whether it ends the entity being read: the end of
// the input, or a delimiter line of an open multipart.
func (c *conv) atEnd() (bool, error) {
	p, err := c.peek()
	if err != nil || p == nil {
		return true, err
	}
	i, _, err := c.delimiter()
	return i >= 0, err
}

// copyRest copies the rest of the entity being read as it is. noEight refuses 8-bit octets
// (a preamble or epilogue).
func (c *conv) copyRest(noEight bool) error {
	for {
		if end, err := c.atEnd(); end || err != nil {
			return err
		}
		if noEight && c.out != nil && Has8Bit(c.line) {
			return ErrStructure
		}
		if err := c.write(c.line); err != nil {
			return err
		}
		c.consume()
	}
}

// header is what the converter needs of a header section.
type header struct {
	ctype, cte  []byte // the first such field, as it was; nil if none
	mimeVersion bool
	has8        bool // an 8-bit octet in a field
	long        bool // ctype or cte longer than maxField
	separator   bool // the empty line is at hand; false: the entity ended without one
}

// readHeader reads the fields of an entity up to its empty line, writing each but the
// Content-Transfer-Encoding fields when skipCTE is set. A field is a line and the lines after
// it that start with white space.
func (c *conv) readHeader(skipCTE bool) (header, error) {
	var h header
	var keep *[]byte // the field being read is kept there
	isCTE, fields := false, 0
	for {
		if end, err := c.atEnd(); end || err != nil {
			return h, err
		}
		p := c.line
		if c.start {
			if len(bytes.TrimRight(p, "\r\n")) == 0 {
				if !c.whole {
					return h, ErrLongLine // CRs only, so far
				}
				h.separator = true
				return h, nil
			}
			if (p[0] != ' ' && p[0] != '\t') || fields == 0 {
				fields++
				name := fieldName(p, c.whole)
				isCTE, keep = name == "content-transfer-encoding", nil
				switch {
				case name == "content-type" && h.ctype == nil:
					h.ctype, keep = []byte{}, &h.ctype
				case isCTE && h.cte == nil:
					h.cte, keep = []byte{}, &h.cte
				case name == "mime-version":
					h.mimeVersion = true
				}
			}
		}
		h.has8 = h.has8 || Has8Bit(p)
		if keep != nil {
			if len(*keep)+len(p) > maxField {
				h.long, keep = true, nil
			} else {
				*keep = append(*keep, p...)
			}
		}
		if (!isCTE || !skipCTE) && !h.has8 { // an 8-bit field is refused after the header
			if err := c.write(p); err != nil {
				return h, err
			}
		}
		c.consume()
	}
}

// fieldName is the lower-case name of the field whose first line (or its first piece) is p:
// what comes before its colon, or the whole line. A piece without a colon names none of the
// fields the converter looks for.
func fieldName(p []byte, whole bool) string {
	name, _, found := bytes.Cut(p, []byte(":"))
	if !found && !whole {
		return ""
	}
	name = bytes.TrimSpace(name)
	for _, want := range []string{"content-type", "content-transfer-encoding", "mime-version"} {
		if equalFoldASCII(name, want) {
			return want
		}
	}
	return ""
}

// equalFoldASCII compares b with the lower-case ASCII want, ignoring the case of ASCII letters
// only, as strings.ToLower does for these names.
func equalFoldASCII(b []byte, want string) bool {
	if len(b) != len(want) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// value is a field's value, unfolded.
func value(raw []byte) string {
	_, v, _ := strings.Cut(string(raw), ":")
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	return strings.TrimSpace(v)
}

// entity reads (and writes) one message or MIME part, whose content type is defaultType when
// it has no Content-Type field, up to its end.
func (c *conv) entity(defaultType string, depth int) error {
	if c.out == nil {
		return c.planEntity(defaultType, depth)
	}
	idx := c.next
	c.next++
	if depth > maxDepth {
		return ErrStructure
	}
	convert := c.plan.get(idx)
	h, err := c.readHeader(convert)
	switch {
	case err != nil:
		return err
	case h.has8:
		return ErrHeader
	case !convert:
		return c.copyRest(false)
	case !h.separator:
		return ErrStructure // cannot happen: the plan saw 8-bit octets in its body
	case h.long:
		return ErrLongLine
	}
	return c.convertBody(h, defaultType, depth)
}

// planEntity reads an entity when planning: into its parts or message, as the writing run will
// if it converts it; anything that run refuses is read as a whole.
func (c *conv) planEntity(defaultType string, depth int) error {
	idx, err := c.plan.add()
	if err != nil {
		return err
	}
	h, err := c.readHeader(false)
	if err != nil || !h.separator {
		return err
	}
	c.consume() // the empty line
	c.open = append(c.open, idx)
	mediaType, params, cte := h.types(defaultType)
	top, sub, _ := strings.Cut(mediaType, "/")
	switch {
	case depth > maxDepth || !identity(cte):
		err = c.copyRest(false)
	case top == "multipart" && params["boundary"] != "":
		err = c.multipart(params["boundary"], partType(sub), depth)
	case mediaType == "message/rfc822":
		err = c.entity("text/plain", depth+1)
	default:
		err = c.copyRest(false)
	}
	c.open = c.open[:len(c.open)-1]
	if !c.plan.get(idx) {
		c.plan.n = idx + 1 // copied whole: what is inside is never asked for
	}
	return err
}

// convertBody writes the end of the header of an entity with 8-bit octets in its body, and its
// body converted.
func (c *conv) convertBody(h header, defaultType string, depth int) error {
	var add []string
	if depth == 0 {
		// A message that is 8-bit text without MIME labels: say what it is, so that the
		// encoding can be undone (RFC 1428 §3 names the charset unknown-8bit).
		if !h.mimeVersion {
			add = append(add, "MIME-Version: 1.0")
		}
		if h.ctype == nil {
			add = append(add, "Content-Type: text/plain; charset=unknown-8bit")
		}
	}
	mediaType, params, cte := h.types(defaultType)
	top, sub, _ := strings.Cut(mediaType, "/")
	switch {
	case !identity(cte):
		return ErrEncoded
	case top == "multipart" && params["boundary"] != "":
		if err := c.endHeader(add, "7bit"); err != nil {
			return err
		}
		return c.multipart(params["boundary"], partType(sub), depth)
	case mediaType == "message/rfc822":
		if err := c.endHeader(add, "7bit"); err != nil {
			return err
		}
		return c.entity("text/plain", depth+1)
	case top == "multipart" || top == "message":
		// A multipart without a boundary cannot be split, and the other message types
		// (partial, external-body, global...) may not be encoded (RFC 2046 §5.2).
		return ErrStructure
	case top == "text":
		if err := c.endHeader(add, "quoted-printable"); err != nil {
			return err
		}
		return c.encode(quotedprintable.NewWriter(c.out))
	default:
		if err := c.endHeader(add, "base64"); err != nil {
			return err
		}
		return c.encode(base64.NewEncoder(base64.StdEncoding, &lines76{w: c.out}))
	}
}

// identity reports whether a transfer encoding leaves the octets as they are.
func identity(cte string) bool { return cte == "7bit" || cte == "8bit" || cte == "binary" }

// partType is the default type of the parts of a multipart of that subtype.
func partType(sub string) string {
	if sub == "digest" {
		return "message/rfc822" // RFC 2046 §5.1.5
	}
	return "text/plain"
}

// types returns the entity's media type, its parameters and its transfer encoding.
func (h header) types(defaultType string) (string, map[string]string, string) {
	mediaType, params := defaultType, map[string]string(nil)
	if h.ctype != nil && !h.long {
		if mt, p, err := mime.ParseMediaType(value(h.ctype)); err == nil {
			mediaType, params = mt, p
		} else {
			mediaType = "text/plain" // RFC 2045 §5.2: the default for an invalid Content-Type
		}
	}
	cte := "7bit"
	if h.cte != nil && !h.long {
		cte = strings.ToLower(value(h.cte))
	}
	return mediaType, params, cte
}

// endHeader writes the added fields, the new Content-Transfer-Encoding and the empty line.
func (c *conv) endHeader(add []string, cte string) error {
	for _, a := range add {
		if err := c.out.writeString(a + "\r\n"); err != nil {
			return err
		}
	}
	if err := c.out.writeString("Content-Transfer-Encoding: " + cte + "\r\n"); err != nil {
		return err
	}
	if err := c.write(c.line); err != nil {
		return err
	}
	c.consume()
	return nil
}

// multipart reads (and writes) the body of a multipart: the preamble, the delimiter lines and
// the epilogue as they are (they must be 7-bit already), each part converted.
func (c *conv) multipart(boundary, defaultPart string, depth int) error {
	delim := []byte("--" + boundary)
	own := len(c.delims)
	c.delims = append(c.delims, delim)
	defer func() { c.delims = c.delims[:own] }()
	for { // the preamble
		p, err := c.peek()
		if err != nil {
			return err
		}
		i, _, err := c.delimiter()
		switch {
		case err != nil:
			return err
		case p == nil || (i >= 0 && i < own):
			if c.out != nil {
				return ErrStructure // no delimiter at all: nothing is a part
			}
			return nil
		case i == own:
		case c.out != nil && Has8Bit(p):
			return ErrStructure
		default:
			if err := c.write(p); err != nil {
				return err
			}
			c.consume()
			continue
		}
		break
	}
	for { // at a delimiter line of this multipart
		_, kind, _ := c.delimiter()
		if err := c.write(c.line); err != nil {
			return err
		}
		c.consume()
		if kind == 2 {
			c.delims = c.delims[:own] // the epilogue: no more parts
			return c.copyRest(true)
		}
		if err := c.part(delim, defaultPart, depth); err != nil {
			return err
		}
		p, err := c.peek()
		if err != nil || p == nil {
			return err // no close delimiter: the last part ran to the end
		}
		if i, _, err := c.delimiter(); err != nil || i < own {
			return err // an outer multipart's delimiter ends this one
		}
	}
}

// part reads (and writes) one part of a multipart. When it is converted, no line of it may start
// like the delimiter.
func (c *conv) part(delim []byte, defaultType string, depth int) error {
	check := c.out != nil && c.plan.get(c.next)
	if check {
		c.out.push(delim)
		defer c.out.pop()
	}
	return c.entity(defaultType, depth+1)
}

// encode writes the body of a leaf entity through enc. Its last line end stays outside the
// encoding: within a multipart it belongs to the delimiter that follows (RFC 2046 §5.1.1), at
// the end of a message it is the last line's, and stays too (as CRLF).
func (c *conv) encode(enc io.WriteCloser) error {
	var held []byte // a line end (CRLF, LF or CR) not given to enc yet: it may be the last
	var buf [2]byte
	for {
		if end, err := c.atEnd(); err != nil {
			return err
		} else if end {
			break
		}
		p := c.line
		k := 0
		switch {
		case bytes.HasSuffix(p, []byte("\r\n")):
			k = 2
		case bytes.HasSuffix(p, []byte("\n")), bytes.HasSuffix(p, []byte("\r")):
			k = 1
		}
		if k == len(p) && len(held) == 1 && held[0] == '\r' && p[0] == '\n' {
			held = append(buf[:0], '\r', '\n') // a CR at the end of one piece, its LF in the next
		} else {
			if _, err := enc.Write(held); err != nil {
				return err
			}
			if _, err := enc.Write(p[:len(p)-k]); err != nil {
				return err
			}
			held = append(buf[:0], p[len(p)-k:]...)
		}
		c.consume()
	}
	nl := ""
	if len(held) > 0 && held[len(held)-1] == '\n' {
		nl = "\r\n"
	} else if _, err := enc.Write(held); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return c.out.writeString(nl)
}

// lines76 cuts base64 text in lines of 76 characters (RFC 2045 §6.8), with no line end
// after the last.
type lines76 struct {
	w    io.Writer
	col  int
	crlf [2]byte // written from here: a string would be copied to the heap at each line
}

func (l *lines76) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.col == 76 {
			l.crlf = [2]byte{'\r', '\n'}
			if _, err := l.w.Write(l.crlf[:]); err != nil {
				return 0, err
			}
			l.col = 0
		}
		k := min(len(p), 76-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.col += k
		p = p[k:]
	}
	return n, nil
}

// delimiterKind says whether line is a delimiter line of the boundary: 1 for a part
// delimiter, 2 for the close delimiter, 0 for neither. Trailing white space is allowed
// (RFC 2046 §5.1.1).
func delimiterKind(line, delim []byte) int {
	rest, ok := bytes.CutPrefix(line, delim)
	if !ok {
		return 0
	}
	kind := 1
	if r, ok := bytes.CutPrefix(rest, []byte("--")); ok {
		kind, rest = 2, r
	}
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return 0
	}
	return kind
}
