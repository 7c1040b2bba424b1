package smtp

import (
	"bufio"
	"bytes"
	"io"
)

// MaxTextLine is the longest text line of a message, CRLF included (RFC 5321 §4.5.3.1.6).
const MaxTextLine = 1000

// TextChecker validates message text as it streams past, in pieces of any size: every line must
// end in CRLF, hold no bare CR or LF and no NUL, and be at most MaxTextLine octets. It remembers
// the first fault and keeps going, so the caller can read to the end of the message before it
// answers. DATA uses it below; BDAT uses it directly on each chunk of a non-BINARYMIME message.
//
// NUL is refused because neither 7bit nor 8bit text may hold it (RFC 2045 §2.7, §2.8; RFC 6152
// §3): only BODY=BINARYMIME may, and a server downstream that strips NULs could otherwise find a
// <CRLF>.<CRLF> that was not there when we checked (SMTP smuggling through NUL).
type TextChecker struct {
	lineLen int  // octets of the current line so far, CR included
	prevCR  bool // the last octet seen was a CR, which the next octet must make a CRLF
	err     error
}

// Err returns the first fault seen, or nil.
func (c *TextChecker) Err() error { return c.err }

func (c *TextChecker) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Write checks p. It never fails, so it can sit behind an io.MultiWriter or io.TeeReader.
func (c *TextChecker) Write(p []byte) (int, error) {
	c.scan(p)
	return len(p), nil
}

// scan checks p and reports whether p ends exactly at a CRLF.
//
// It finds the octets that matter with bytes.IndexByte, which looks at many octets at a time
// (bytes.IndexAny looks at one), and remembers where the next LF, CR and NUL are: each is looked
// up again only once passed, so the work stays linear in len(p) however those octets are spread.
func (c *TextChecker) scan(p []byte) (endsLine bool) {
	lf, cr, nul := -1, -1, -1
	for pos := 0; pos < len(p); {
		if lf < pos {
			lf = indexFrom(p, pos, '\n')
		}
		if cr < pos {
			cr = indexFrom(p, pos, '\r')
		}
		if nul < pos {
			nul = indexFrom(p, pos, 0)
		}
		i := min(lf, cr, nul)
		plain := i - pos // octets before it that are neither CR, LF nor NUL
		if plain > 0 && c.prevCR {
			c.fail(ErrBareCR)
			c.prevCR = false
		}
		if i == len(p) {
			c.grow(plain)
			return false
		}
		if i == cr && i+1 == lf && lf < len(p) && !c.prevCR {
			// The common case, a line of text and its CRLF: only its length can be wrong.
			c.grow(plain + 2)
			c.lineLen = 0
			pos = i + 2
			if pos == len(p) {
				return true
			}
			continue
		}
		c.grow(plain + 1)
		pos = i + 1
		switch i {
		case cr:
			if c.prevCR { // CR CR: the first one is bare
				c.fail(ErrBareCR)
			}
			c.prevCR = true
			continue
		case nul:
			if c.prevCR { // CR NUL: the CR is bare, and came first
				c.fail(ErrBareCR)
				c.prevCR = false
			}
			c.fail(ErrNUL)
			continue
		}
		// LF: a line ends here; only CR LF is a proper end.
		proper := c.prevCR && plain == 0
		if !proper {
			c.fail(ErrBareLF)
		}
		c.prevCR = false
		c.lineLen = 0
		if pos == len(p) {
			return proper
		}
	}
	return false
}

// indexFrom returns the index of the first b in p at or after from, or len(p).
func indexFrom(p []byte, from int, b byte) int {
	if i := bytes.IndexByte(p[from:], b); i >= 0 {
		return from + i
	}
	return len(p)
}

func (c *TextChecker) grow(n int) {
	c.lineLen += n
	if c.lineLen > MaxTextLine {
		c.fail(ErrLineTooLong)
	}
}

// Unterminated reports whether the text seen so far ends inside a line (without CRLF).
func (c *TextChecker) Unterminated() bool { return c.lineLen > 0 }

// Finish reports the first fault, counting a CR left dangling at the very end as bare.
func (c *TextChecker) Finish() error {
	if c.prevCR {
		c.fail(ErrBareCR)
		c.prevCR = false
	}
	return c.err
}

// ReadData reads a DATA message body from r up to and including the terminating CRLF "." CRLF,
// removes dot-stuffing (RFC 5321 §4.5.2) and copies the body, CRLF line ends kept, to w.
//
// Only a line that is exactly "." after a real CRLF ends the data: LF "." LF, CR "." CR and
// LF "." CRLF do not, which closes the SMTP smuggling hole. Faults in the text (bare CR or LF, a
// NUL, a line over 1000 octets, more than maxSize octets) stop the copying but not the reading, so the
// whole message is consumed and the first fault is returned after the terminator; the caller
// answers and the session goes on in step. An error writing to w is treated the same way (the
// session answers 451 and goes on); only an error reading r is returned at once.
func ReadData(r *bufio.Reader, w io.Writer, maxSize int64) (n int64, err error) {
	var c TextChecker
	var werr error
	bol := true // at the beginning of a line, i.e. after a CRLF (or at the start)
	writing := true
	// write checks out and copies it to w, as long as nothing went wrong; it returns whether out
	// ends exactly at a CRLF.
	write := func(out []byte) bool {
		endsLine := c.scan(out)
		switch {
		case c.err != nil || !writing:
			writing = false
		case n+int64(len(out)) > maxSize:
			c.fail(ErrTooBig)
			writing = false
		default:
			var k int
			k, werr = w.Write(out)
			n += int64(k) // a short write still wrote k octets (io.Writer)
			if werr != nil {
				writing = false
			}
		}
		return endsLine
	}
	for {
		// The whole lines already in r's buffer, up to the first one that starts with a dot
		// (stuffed, or the end), are checked and written in one piece: most of a message goes
		// through in a few writes rather than a write per line. The lines in between are
		// judged exactly as one at a time would be (see dataLines). They start where a line
		// does: at the start, or after an LF.
		if !c.Unterminated() {
			buffered, _ := r.Peek(r.Buffered()) // never blocks: only what is there
			if run := dataLines(buffered, bol); len(run) > 0 {
				bol = write(run)
				_, _ = r.Discard(len(run)) // buffered: cannot fail
				continue
			}
		}
		seg, rerr := r.ReadSlice('\n')
		if rerr != nil && rerr != bufio.ErrBufferFull {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return n, rerr
		}
		if bol && len(seg) == 3 && seg[0] == '.' && seg[1] == '\r' && seg[2] == '\n' {
			if werr != nil {
				return n, werr
			}
			return n, c.err
		}
		out := seg
		if bol && len(seg) > 0 && seg[0] == '.' {
			out = seg[1:]
		}
		// Check the unstuffed text: the line limit does not count the dot added for
		// transparency (RFC 5321 §4.5.3.1.6), and the dot is never a CR or LF.
		bol = write(out)
	}
}

// dataLines returns the longest prefix of b, which starts a line, made of whole lines (each
// ended by an LF) of which none starts with a dot at the beginning of a line: where a dot is
// stuffing or the terminator. bol says whether b's first line is at the beginning of a line,
// i.e. the line before it ended with CRLF; each line after is iff the one before ends with CR
// LF, as TextChecker.scan judges it (a line ends properly only when a CR comes right before its
// LF), so a dot after a bare LF stays text here as it does one line at a time.
func dataLines(b []byte, bol bool) []byte {
	end := 0
	for end < len(b) && !(bol && b[end] == '.') {
		i := bytes.IndexByte(b[end:], '\n')
		if i < 0 {
			break
		}
		bol = i > 0 && b[end+i-1] == '\r'
		end += i + 1
	}
	return b[:end]
}
