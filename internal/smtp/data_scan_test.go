package smtp

import (
	"testing"
)

// refChecker is TextChecker written the plain way, an octet at a time, to test the fast one
// against: it must give the same first fault in the same order, the same line state and the
// same "ends at a CRLF" answer for every write.
type refChecker struct {
	lineLen int
	prevCR  bool
	err     error
}

func (r *refChecker) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *refChecker) grow() {
	r.lineLen++
	if r.lineLen > MaxTextLine {
		r.fail(ErrLineTooLong)
	}
}

func (r *refChecker) write(p []byte) (endsLine bool) {
	for _, b := range p {
		endsLine = false
		switch b {
		case '\r':
			r.grow()
			if r.prevCR {
				r.fail(ErrBareCR)
			}
			r.prevCR = true
		case '\n':
			r.grow()
			if !r.prevCR {
				r.fail(ErrBareLF)
			}
			endsLine = r.prevCR
			r.prevCR = false
			r.lineLen = 0
		case 0:
			r.grow()
			if r.prevCR {
				r.fail(ErrBareCR)
				r.prevCR = false
			}
			r.fail(ErrNUL)
		default:
			if r.prevCR {
				r.fail(ErrBareCR)
				r.prevCR = false
			}
			r.grow()
		}
	}
	return endsLine
}

// FuzzTextCheckerReference splits the input into writes at the cut points given and checks
// TextChecker against refChecker after every write.
func FuzzTextCheckerReference(f *testing.F) {
	long := make([]byte, 2*MaxTextLine)
	for i := range long {
		long[i] = 'x'
	}
	for _, s := range []string{
		"", "a\r\n", "a\r\nb\r\n", "a\rb\r\n", "a\nb", "\r\r\n", "a\r", "\x00\r\n", "a\r\x00\n",
		"\r\x00", "x\r\n\r\n.\r\n", "ab\r\ncd\ref\n\x00", string(long[:MaxTextLine-2]) + "\r\n",
		string(long[:MaxTextLine-1]) + "\r\n", string(long[:MaxTextLine-1]) + "\r\r\n",
		string(long[:MaxTextLine]) + "\r\x00", string(long) + "\r\n",
	} {
		f.Add([]byte(s), []byte{1, 3})
		f.Add([]byte(s), []byte{})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var got TextChecker
		var want refChecker
		for len(data) > 0 {
			n := len(data)
			if len(cuts) > 0 {
				n = min(n, int(cuts[0]))
				cuts = cuts[1:]
			}
			p := data[:n]
			data = data[n:]
			ends, wantEnds := got.scan(p), want.write(p)
			if len(p) == 0 {
				wantEnds = false
			}
			if ends != wantEnds || got.err != want.err || got.prevCR != want.prevCR || got.lineLen != want.lineLen {
				t.Fatalf("after %q: ends=%v err=%v prevCR=%v lineLen=%d, want ends=%v err=%v prevCR=%v lineLen=%d",
					p, ends, got.err, got.prevCR, got.lineLen, wantEnds, want.err, want.prevCR, want.lineLen)
			}
		}
	})
}
