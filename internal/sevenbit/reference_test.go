package sevenbit

// The in-memory converter tern used before the streaming one: the reference the streaming
// converter is compared with (TestStreamMatchesReference, FuzzStream), kept as it was but
// for its names, and delimiterKind, which the streaming converter took over unchanged.

import (
	"bytes"
	"encoding/base64"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// referenceConvert returns msg in 7 bits, or msg itself when it has no 8-bit octet.
func referenceConvert(msg []byte) ([]byte, error) {
	if !Has8Bit(msg) {
		return msg, nil
	}
	var out bytes.Buffer
	out.Grow(len(msg) + len(msg)/3)
	if err := refConvert(&out, msg, "text/plain", 0); err != nil {
		return nil, err
	}
	if Has8Bit(out.Bytes()) { // cannot happen; never send what the server cannot take
		return nil, ErrStructure
	}
	return out.Bytes(), nil
}

// refField is one header refField: its name, and its lines as they were.
type refField struct {
	name string
	raw  []byte
}

// value is the refField's value, unfolded.
func (f refField) value() string {
	_, v, _ := strings.Cut(string(f.raw), ":")
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	return strings.TrimSpace(v)
}

// refEntity is a message or a MIME part, split into its header fields and its body.
type refEntity struct {
	fields    []refField
	separator []byte // the empty line between header and body, nil if there is none
	body      []byte
}

// refLineEnd returns the index after the line that starts at i (after its LF, or len(b)).
func refLineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// refIsBlank reports whether line (with its line end) is empty.
func refIsBlank(line []byte) bool {
	return len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0
}

func refParseEntity(b []byte) refEntity {
	var e refEntity
	i := 0
	for i < len(b) {
		end := refLineEnd(b, i)
		line := b[i:end]
		if refIsBlank(line) {
			e.separator, e.body = line, b[end:]
			return e
		}
		if (line[0] == ' ' || line[0] == '\t') && len(e.fields) > 0 {
			last := &e.fields[len(e.fields)-1]
			last.raw = b[i-len(last.raw) : end]
		} else {
			name, _, _ := bytes.Cut(line, []byte(":"))
			e.fields = append(e.fields, refField{name: strings.ToLower(strings.TrimSpace(string(name))), raw: line})
		}
		i = end
	}
	return e
}

func (e refEntity) get(name string) (refField, bool) {
	for _, f := range e.fields {
		if f.name == name {
			return f, true
		}
	}
	return refField{}, false
}

// writeHeader writes the fields but Content-Transfer-Encoding, then add, then the new
// Content-Transfer-Encoding: cte, then the separator.
func (e refEntity) writeHeader(out *bytes.Buffer, add []string, cte string) {
	for _, f := range e.fields {
		if f.name != "content-transfer-encoding" {
			out.Write(f.raw)
			if !bytes.HasSuffix(f.raw, []byte("\n")) {
				out.WriteString("\r\n") // a header without a body: the last refField had no line end
			}
		}
	}
	for _, a := range add {
		out.WriteString(a + "\r\n")
	}
	out.WriteString("Content-Transfer-Encoding: " + cte + "\r\n")
	if e.separator != nil {
		out.Write(e.separator)
	} else {
		out.WriteString("\r\n")
	}
}

// refConvert writes the 7-bit form of the entity b, whose content type is defaultType when it
// has no Content-Type refField.
func refConvert(out *bytes.Buffer, b []byte, defaultType string, depth int) error {
	if depth > maxDepth {
		return ErrStructure
	}
	e := refParseEntity(b)
	for _, f := range e.fields {
		if Has8Bit(f.raw) {
			return ErrHeader
		}
	}
	if !Has8Bit(e.body) {
		out.Write(b)
		return nil
	}
	var add []string
	if depth == 0 {
		// A message that is 8-bit text without MIME labels: say what it is, so that the
		// encoding can be undone (RFC 1428 §3 names the charset unknown-8bit).
		if _, ok := e.get("mime-version"); !ok {
			add = append(add, "MIME-Version: 1.0")
		}
		if _, ok := e.get("content-type"); !ok {
			add = append(add, "Content-Type: text/plain; charset=unknown-8bit")
		}
	}
	mediaType, params := defaultType, map[string]string(nil)
	if f, ok := e.get("content-type"); ok {
		if mt, p, err := mime.ParseMediaType(f.value()); err == nil {
			mediaType, params = mt, p
		} else {
			mediaType = "text/plain" // RFC 2045 §5.2: the default for an invalid Content-Type
		}
	}
	cte := "7bit"
	if f, ok := e.get("content-transfer-encoding"); ok {
		cte = strings.ToLower(f.value())
	}
	identity := cte == "7bit" || cte == "8bit" || cte == "binary"
	top, sub, _ := strings.Cut(mediaType, "/")
	switch {
	case !identity:
		return ErrEncoded
	case top == "multipart" && params["boundary"] != "":
		e.writeHeader(out, add, "7bit")
		partType := "text/plain"
		if sub == "digest" {
			partType = "message/rfc822" // RFC 2046 §5.1.5
		}
		return refConvertMultipart(out, e.body, params["boundary"], partType, depth)
	case mediaType == "message/rfc822":
		e.writeHeader(out, add, "7bit")
		return refConvert(out, e.body, "text/plain", depth+1)
	case top == "multipart" || top == "message":
		// A multipart without a boundary cannot be split, and the other message types
		// (partial, external-body, global...) may not be encoded (RFC 2046 §5.2).
		return ErrStructure
	case top == "text":
		e.writeHeader(out, add, "quoted-printable")
		body, nl := refTrimLineEnd(e.body)
		w := quotedprintable.NewWriter(out)
		_, _ = w.Write(body) // into a bytes.Buffer: cannot fail
		_ = w.Close()
		out.WriteString(nl)
	default:
		e.writeHeader(out, add, "base64")
		body, nl := refTrimLineEnd(e.body)
		refWriteBase64(out, body)
		out.WriteString(nl)
	}
	return nil
}

// refTrimLineEnd splits off the body's last line end. Within a multipart it belongs to the
// delimiter that follows (RFC 2046 §5.1.1), so it must stay outside the encoding; at the end of
// a message it is the last line's, and stays too.
func refTrimLineEnd(b []byte) ([]byte, string) {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return b[:len(b)-2], "\r\n"
	case bytes.HasSuffix(b, []byte("\n")):
		return b[:len(b)-1], "\r\n"
	}
	return b, ""
}

// refWriteBase64 writes b in base64, in lines of 76 characters (RFC 2045 §6.8).
func refWriteBase64(out *bytes.Buffer, b []byte) {
	enc := base64.StdEncoding.EncodeToString(b)
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
}

// refConvertMultipart converts each part of a multipart body; the preamble, the delimiter lines
// and the epilogue stay as they are, and must be 7-bit already.
func refConvertMultipart(out *bytes.Buffer, body []byte, boundary, partType string, depth int) error {
	delim := []byte("--" + boundary)
	start := -1 // start of the current part; -1 in the preamble
	closed := false
	for i := 0; i < len(body); {
		end := refLineEnd(body, i)
		line := body[i:end]
		kind := delimiterKind(line, delim)
		switch {
		case kind == 0 || closed:
			i = end
			continue
		case start < 0:
			if Has8Bit(body[:i]) {
				return ErrStructure
			}
			out.Write(body[:i])
		default:
			if err := refConvertPart(out, body[start:i], delim, partType, depth); err != nil {
				return err
			}
		}
		out.Write(line)
		start, i = end, end
		closed = kind == 2
	}
	switch {
	case start < 0: // no delimiter at all: nothing is a part
		return ErrStructure
	case closed:
		if Has8Bit(body[start:]) {
			return ErrStructure
		}
		out.Write(body[start:])
		return nil
	default: // no close delimiter: the last part runs to the end
		return refConvertPart(out, body[start:], delim, partType, depth)
	}
}

// refConvertPart converts one part of a multipart. A line of its new encoding that starts like
// the delimiter (a quoted-printable soft break can put any text at the start of a line) would
// end the part early for some readers, so such a part is refused instead.
func refConvertPart(out *bytes.Buffer, part, delim []byte, partType string, depth int) error {
	var conv bytes.Buffer
	if err := refConvert(&conv, part, partType, depth+1); err != nil {
		return err
	}
	if b := conv.Bytes(); !bytes.Equal(b, part) {
		for i := 0; i < len(b); i = refLineEnd(b, i) {
			if bytes.HasPrefix(b[i:], delim) {
				return ErrStructure
			}
		}
	}
	out.Write(conv.Bytes())
	return nil
}
