package dkim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxHeader bounds the header section read before signing or verifying starts: submission and
// the MX already cap a message's size, but this package must not trust its caller for that.
const maxHeader = 1 << 20

// ErrHeaderTooLong is returned for a header section past maxHeader.
var ErrHeaderTooLong = errors.New("dkim: header section longer than 1 MiB")

// field is one header field: its name and its whole raw text, folded lines and CRLF included.
type field struct {
	name string
	raw  string
}

// readHeader reads the header section of a message up to and including the empty line that
// ends it (or to the end, for a message without a body), and returns its fields and its raw
// octets, which the caller puts back in front of the rest of br.
func readHeader(br *bufio.Reader) ([]field, []byte, error) {
	var raw bytes.Buffer
	var fields []field
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: take it in pieces.
			var long []byte
			long = append(long, line...)
			for errors.Is(err, bufio.ErrBufferFull) && raw.Len()+len(long) <= maxHeader {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, nil, ErrHeaderTooLong
			}
			return nil, nil, fmt.Errorf("dkim: read header: %w", err)
		}
		if raw.Len()+len(line) > maxHeader {
			return nil, nil, ErrHeaderTooLong
		}
		raw.Write(line)
		switch {
		case len(line) == 0:
		case string(line) == "\r\n" || string(line) == "\n":
			return fields, raw.Bytes(), nil
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1].raw += string(line)
		default:
			name, _, _ := strings.Cut(string(line), ":")
			fields = append(fields, field{name: strings.TrimSpace(name), raw: string(line)})
		}
		if errors.Is(err, io.EOF) {
			return fields, raw.Bytes(), nil
		}
	}
}

// value is the field's text after the colon, unfolded.
func (f field) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	v = strings.ReplaceAll(v, "\r\n", "")
	return strings.ReplaceAll(v, "\n", "")
}

// parseTags reads a tag-list (RFC 6376 §3.2): tag=value pairs separated by semicolons, with
// whitespace around them ignored. A duplicate tag or one without '=' is an error; an empty
// final element is allowed.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, spec := range strings.Split(s, ";") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("tag %q without '='", spec)
		}
		name = strings.TrimSpace(name)
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("tag %q given twice", name)
		}
		tags[name] = strings.TrimSpace(value)
	}
	return tags, nil
}
