package smtp

import (
	"bytes"
	"errors"
	"io"
)

// ErrWriteAfterClose is returned by a DotWriter written to after Close.
var ErrWriteAfterClose = errors.New("smtp: write after close")

// DotWriter writes a message as the text of a DATA command: the client side of ReadData. It
// stuffs a dot in front of every line that starts with one (RFC 5321 §4.5.2), and Close ends
// the text with CRLF "." CRLF, adding the CRLF when the message does not end with one.
//
// Line ends are where SMTP smuggling lives (a bare LF "." LF that one server takes for the end of
// the data and the next does not), so the writer never passes a bare CR or LF on. With normalize
// set, a bare LF or CR becomes CRLF (for text typed or stored with Unix line ends); without it,
// the first one fails the write with ErrBareLF or ErrBareCR. After any error the data must not
// be ended: the caller drops the connection, so that the server discards the partial message.
//
// A DotWriter buffers nothing but a pending CR; it does not close w.
type DotWriter struct {
	w         io.Writer
	normalize bool
	bol       bool // at the beginning of a line: after a CRLF, or before the first octet
	cr        bool // a CR was seen and not yet written: the next octet decides what it is
	closed    bool
	err       error // the first error, returned by every later call
}

// NewDotWriter returns a DotWriter that writes to w; normalize turns bare LF and CR into CRLF
// instead of refusing them.
func NewDotWriter(w io.Writer, normalize bool) *DotWriter {
	return &DotWriter{w: w, normalize: normalize, bol: true}
}

var (
	crlf = []byte("\r\n")
	dot  = []byte(".")
)

// emit writes b to the underlying writer, remembering a failure.
func (d *DotWriter) emit(b []byte) bool {
	if _, err := d.w.Write(b); err != nil {
		d.err = err
		return false
	}
	return true
}

// endLine writes the CRLF of a line end (real, or made from a bare CR or LF).
func (d *DotWriter) endLine() bool {
	d.bol = true
	return d.emit(crlf)
}

// Write stuffs and writes p. It returns how many octets of p it consumed.
func (d *DotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.closed {
		return 0, ErrWriteAfterClose
	}
	// nextLF is where the next LF at or after i is (len(p) when none), found once and kept until
	// passed: the CR search stops there, so the work stays linear however many CRs a line holds.
	i, nextLF := 0, -1
	for i < len(p) {
		if d.cr {
			d.cr = false
			if p[i] == '\n' { // CR LF: a proper line end
				if !d.endLine() {
					return i, d.err
				}
				i++
				continue
			}
			if !d.normalize {
				d.err = ErrBareCR
				return i, d.err
			}
			if !d.endLine() { // the bare CR becomes a line end; p[i] starts the next line
				return i, d.err
			}
		}
		if d.bol && p[i] == '.' {
			if !d.emit(dot) { // the stuffed dot; the line's own dot follows as text
				return i, d.err
			}
		}
		if nextLF < i {
			nextLF = len(p)
			if k := bytes.IndexByte(p[i:], '\n'); k >= 0 {
				nextLF = i + k
			}
		}
		// The first CR or LF, by IndexByte (vectorized) rather than IndexAny's octet loop.
		j := bytes.IndexByte(p[i:nextLF], '\r')
		if j < 0 && nextLF < len(p) {
			j = nextLF - i
		}
		if j < 0 {
			if !d.emit(p[i:]) {
				return i, d.err
			}
			d.bol = false
			return len(p), nil
		}
		if j > 0 {
			if !d.emit(p[i : i+j]) {
				return i, d.err
			}
			d.bol = false
		}
		i += j
		if p[i] == '\r' {
			d.cr = true
			i++
			continue
		}
		// A bare LF: the CR LF case was handled above.
		if !d.normalize {
			d.err = ErrBareLF
			return i, d.err
		}
		if !d.endLine() {
			return i, d.err
		}
		i++
	}
	return len(p), nil
}

// Close ends the data: it completes the last line with CRLF if needed and writes "." CRLF. It
// does not close the underlying writer. A second Close returns nil and writes nothing.
func (d *DotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	if d.closed {
		return nil
	}
	if d.cr {
		d.cr = false
		if !d.normalize {
			d.err = ErrBareCR
			return d.err
		}
		if !d.endLine() {
			return d.err
		}
	}
	if !d.bol && !d.endLine() {
		return d.err
	}
	if !d.emit([]byte(".\r\n")) {
		return d.err
	}
	d.closed = true
	return nil
}
