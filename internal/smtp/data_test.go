package smtp_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// The message of the seed session, as the client sends it after "354".
const seedMessage = "Subject: This is a test\r\n" +
	"From: Kenneth <kenneth@oeey.com>\r\n" +
	"To: Kenneth <kenneth@oeey.com>\r\n" +
	"\r\n" +
	"This is a test\r\n"

func TestReadData(t *testing.T) {
	line998 := lineOf('x', 998) // with CRLF: exactly MaxTextLine
	tests := []struct {
		name    string
		in      string
		maxSize int64 // 0 means 1 MiB
		bufSize int   // 0 means the bufio default
		body    string
		err     error
		rest    string // what must still be unread after ReadData
	}{
		{name: "seed message", in: seedMessage + ".\r\nQUIT\r\n", body: seedMessage, rest: "QUIT\r\n"},
		{name: "empty message", in: ".\r\nQUIT\r\n", body: "", rest: "QUIT\r\n"},
		{name: "first line is a stuffed dot", in: "..\r\nb\r\n.\r\n", body: ".\r\nb\r\n"},
		{name: "dot unstuffing", in: "..x\r\n...\r\na.b\r\n.\r\n", body: ".x\r\n..\r\na.b\r\n"},
		{name: "unstuffed leading dot is dropped", in: ".x\r\n.\r\n", body: "x\r\n"},
		{name: "dot not at line start is kept", in: "a.\r\n x.\r\n.\r\n", body: "a.\r\n x.\r\n"},
		{name: "dot line with trailing space is text", in: ". \r\n.\r\n", body: " \r\n"},
		{name: "empty lines", in: "\r\n\r\n.\r\n", body: "\r\n\r\n"},
		{name: "only the first terminator counts", in: "a\r\n.\r\n.\r\nNOOP\r\n", body: "a\r\n", rest: ".\r\nNOOP\r\n"},
		{name: "line of exactly 1000 octets", in: line998 + "\r\n.\r\n", body: line998 + "\r\n"},
		{name: "line of 1001 octets", in: line998 + "y\r\nafter\r\n.\r\nQUIT\r\n", err: smtp.ErrLineTooLong, rest: "QUIT\r\n"},
		// RFC 5321 §4.5.3.1.6: the 1000-octet limit does not count the dot added by stuffing.
		{name: "stuffed line of 1000 octets", in: "." + "." + line998[1:] + "\r\n.\r\n", body: "." + line998[1:] + "\r\n"},
		{name: "stuffed line of 1001 octets", in: "." + "." + line998 + "\r\n.\r\n", err: smtp.ErrLineTooLong},
		{name: "line of 1000 octets, small buffer", in: line998 + "\r\n.\r\n", bufSize: 16, body: line998 + "\r\n"},
		{name: "line of 1001 octets, small buffer", in: line998 + "y\r\n.\r\nQUIT\r\n", bufSize: 16, err: smtp.ErrLineTooLong, rest: "QUIT\r\n"},
		{name: "huge line", in: lineOf('z', 100000) + "\r\n.\r\nQUIT\r\n", err: smtp.ErrLineTooLong, rest: "QUIT\r\n"},
		{name: "maxSize exactly reached", in: "12345678\r\n.\r\n", maxSize: 10, body: "12345678\r\n"},
		{name: "maxSize counts unstuffed octets", in: "..234567\r\n.\r\n", maxSize: 9, body: ".234567\r\n"},
		{name: "maxSize exceeded", in: "12345678\r\nmore\r\n.\r\nQUIT\r\n", maxSize: 9, err: smtp.ErrTooBig, rest: "QUIT\r\n"},
		{name: "maxSize exceeded, small buffer", in: strings.Repeat("0123456789abcdefghij\r\n", 50) + ".\r\nQUIT\r\n", maxSize: 100, bufSize: 16, err: smtp.ErrTooBig, rest: "QUIT\r\n"},
		{name: "first fault wins: bare LF before too big", in: "a\nbcdefghijkl\r\n.\r\n", maxSize: 5, err: smtp.ErrBareLF},
		{name: "first fault wins: too big before bare CR", in: "abcdefghijkl\r\nx\ry\r\n.\r\n", maxSize: 5, err: smtp.ErrTooBig},
		{name: "bare LF in text", in: "a\nb\r\n.\r\nQUIT\r\n", err: smtp.ErrBareLF, rest: "QUIT\r\n"},
		{name: "bare CR in text", in: "a\rb\r\n.\r\nQUIT\r\n", err: smtp.ErrBareCR, rest: "QUIT\r\n"},
		{name: "CR CR LF", in: "a\r\r\n.\r\n", err: smtp.ErrBareCR},
		{name: "bare CR before the terminator", in: "a\r\r\n.\r\nQUIT\r\n", err: smtp.ErrBareCR, rest: "QUIT\r\n"},
		{name: "NUL in text", in: "a\x00b\r\n.\r\nQUIT\r\n", err: smtp.ErrNUL, rest: "QUIT\r\n"},
		{name: "NUL hiding a terminator", in: "a\r\n.\x00\r\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n", err: smtp.ErrNUL, rest: "QUIT\r\n"},
		{name: "NUL, small buffer", in: lineOf('a', 20) + "\x00\r\n.\r\nQUIT\r\n", bufSize: 16, err: smtp.ErrNUL, rest: "QUIT\r\n"},
		{name: "CRLF split by a refill", in: lineOf('a', 15) + "\r\n" + lineOf('b', 31) + "\r\n.\r\nQUIT\r\n", bufSize: 16,
			body: lineOf('a', 15) + "\r\n" + lineOf('b', 31) + "\r\n", rest: "QUIT\r\n"},
		{name: "stuffed dot after a refill split", in: lineOf('a', 15) + "\r\n..x\r\n.\r\n", bufSize: 16, body: lineOf('a', 15) + "\r\n.x\r\n"},
		{name: "dot at a refill boundary is not at line start", in: lineOf('a', 16) + ".\r\n.\r\n", bufSize: 16, body: lineOf('a', 16) + ".\r\n"},
		// Lines already buffered go through in one piece up to a line that starts with a dot;
		// the pieces must judge each line as one line at a time would.
		{name: "pieces around stuffed dots", in: "a\r\n..b\r\nc\r\nd\r\n..\r\ne\r\n.\r\nQUIT\r\n", body: "a\r\n.b\r\nc\r\nd\r\n.\r\ne\r\n", rest: "QUIT\r\n"},
		{name: "dot after a bare LF inside a piece", in: "a\r\nb\n.\r\nc\r\n.\r\nQUIT\r\n", err: smtp.ErrBareLF, rest: "QUIT\r\n"},
		{name: "dot after an empty bare-LF line", in: "a\r\n\n.\r\n.\r\nQUIT\r\n", err: smtp.ErrBareLF, rest: "QUIT\r\n"},
		{name: "dot after CR CR LF ends the data", in: "a\r\r\n.\r\nQUIT\r\n", err: smtp.ErrBareCR, rest: "QUIT\r\n"},
		{name: "maxSize exceeded inside a piece", in: "1234\r\n5678\r\n9abc\r\n.\r\nQUIT\r\n", maxSize: 9, err: smtp.ErrTooBig, rest: "QUIT\r\n"},
		{name: "EOF before terminator", in: "a\r\nb\r\n", err: io.ErrUnexpectedEOF},
		{name: "EOF after a partial terminator", in: "a\r\n.\r", err: io.ErrUnexpectedEOF},
		{name: "EOF at once", in: "", err: io.ErrUnexpectedEOF},
		{name: "EOF after faults", in: "a\nb", err: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxSize := tt.maxSize
			if maxSize == 0 {
				maxSize = 1 << 20
			}
			r := newReader(tt.in, tt.bufSize)
			var out bytes.Buffer
			n, err := smtp.ReadData(r, &out, maxSize)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if n != int64(out.Len()) {
				t.Errorf("n = %d, but %d octets were written", n, out.Len())
			}
			if err == nil && out.String() != tt.body {
				t.Errorf("body = %q, want %q", out.String(), tt.body)
			}
			if err != nil && tt.err != io.ErrUnexpectedEOF && out.Len() > int(maxSize) {
				t.Errorf("wrote %d octets, more than maxSize %d", out.Len(), maxSize)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tt.rest {
				t.Errorf("unread rest = %q, want %q", rest, tt.rest)
			}
		})
	}
}

// TestReadDataSmuggling covers SMTP smuggling (SEC Consult, December 2023): a client hides a
// second transaction behind an end-of-data sequence that some servers accept and others do not.
// Only CRLF "." CRLF may end the data; the fake terminator is consumed as text (and refused for
// its bare CR or LF), and the command after the real terminator is the next thing read.
func TestReadDataSmuggling(t *testing.T) {
	const smuggled = "MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: admin@bank.example\r\n\r\nwire money\r\n"
	tests := []struct {
		name string
		fake string
		err  error
		real bool // fake holds a real CRLF "." CRLF after a faulty line: the data ends there
	}{
		{name: "LF dot LF", fake: "\n.\n", err: smtp.ErrBareLF},
		{name: "CR dot CR", fake: "\r.\r", err: smtp.ErrBareCR},
		{name: "LF dot CRLF", fake: "\n.\r\n", err: smtp.ErrBareLF},
		{name: "CRLF dot LF", fake: "\r\n.\n", err: smtp.ErrBareLF},
		{name: "CR dot CRLF", fake: "\r.\r\n", err: smtp.ErrBareCR},
		{name: "CRLF dot CR", fake: "\r\n.\r", err: smtp.ErrBareCR},
		{name: "CRLF dot LF CRLF", fake: "\r\n.\n\r\n", err: smtp.ErrBareLF},
		{name: "LF dot", fake: "\n.", err: smtp.ErrBareLF},
		{name: "LF CRLF dot CRLF", fake: "\n\r\n.\r\n", err: smtp.ErrBareLF, real: true},
		{name: "CR CRLF dot CRLF", fake: "\r\r\n.\r\n", err: smtp.ErrBareCR, real: true},
	}
	for _, tt := range tests {
		for _, bufSize := range []int{0, 16} {
			name := tt.name
			if bufSize != 0 {
				name += " small buffer"
			}
			t.Run(name, func(t *testing.T) {
				in := "Subject: hi\r\n\r\nhello" + tt.fake + smuggled + ".\r\nQUIT\r\n"
				if tt.real {
					in = "Subject: hi\r\n\r\nhello" + tt.fake + "QUIT\r\n"
				}
				r := newReader(in, bufSize)
				var out bytes.Buffer
				_, err := smtp.ReadData(r, &out, 1<<20)
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if bytes.Contains(out.Bytes(), []byte("wire money")) {
					t.Errorf("smuggled text was copied to the message: %q", out.Bytes())
				}
				var scratch []byte
				line, err := smtp.ReadLine(r, smtp.MaxCommandLine, &scratch)
				if err != nil || string(line) != "QUIT" {
					t.Fatalf("next line = (%q, %v), want QUIT: the session is out of step", line, err)
				}
			})
		}
	}
}

// failWriter accepts ok octets and then fails every write.
type failWriter struct {
	ok  int
	n   int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+len(p) <= w.ok {
		w.n += len(p)
		return len(p), nil
	}
	k := w.ok - w.n
	w.n = w.ok
	return k, w.err
}

func TestReadDataWriteError(t *testing.T) {
	errDisk := errors.New("disk full")
	tests := []struct {
		name  string
		in    string
		ok    int
		n     int64
		err   error
		after string
	}{
		{"fails at once", "line one\r\nline two\r\n.\r\nQUIT\r\n", 0, 0, errDisk, "QUIT"},
		{"fails on the second line", "line one\r\nline two\r\nline three\r\n.\r\nNOOP\r\n", 10, 10, errDisk, "NOOP"},
		{"short write", "line one\r\nline two\r\n.\r\nRSET\r\n", 14, 14, errDisk, "RSET"},
		{"text fault before write fault", "a\nline two\r\n.\r\nQUIT\r\n", 0, 0, smtp.ErrBareLF, "QUIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(tt.in, 16)
			w := &failWriter{ok: tt.ok, err: errDisk}
			n, err := smtp.ReadData(r, w, 1<<20)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if n != tt.n {
				t.Errorf("n = %d, want %d", n, tt.n)
			}
			var scratch []byte
			line, err := smtp.ReadLine(r, smtp.MaxCommandLine, &scratch)
			if err != nil || string(line) != tt.after {
				t.Fatalf("next line = (%q, %v), want %q", line, err, tt.after)
			}
		})
	}
}

// TestReadDataReadError checks that an error from the connection is returned at once.
func TestReadDataReadError(t *testing.T) {
	errTimeout := errors.New("i/o timeout")
	src := io.MultiReader(strings.NewReader("Subject: x\r\n\r\nbody"), errReader{errTimeout})
	var out bytes.Buffer
	if _, err := smtp.ReadData(bufio.NewReaderSize(src, 16), &out, 1<<20); !errors.Is(err, errTimeout) {
		t.Fatalf("err = %v, want %v", err, errTimeout)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestTextChecker(t *testing.T) {
	line998 := lineOf('x', 998)
	tests := []struct {
		name         string
		in           string
		err          error // Err() after writing everything
		finish       error // Finish()
		unterminated bool
	}{
		{name: "empty"},
		{name: "seed message", in: seedMessage},
		{name: "empty lines", in: "\r\n\r\n"},
		{name: "line of 1000 octets", in: line998 + "\r\n"},
		{name: "line of 1001 octets", in: line998 + "y\r\n", err: smtp.ErrLineTooLong, finish: smtp.ErrLineTooLong},
		{name: "too long without line end", in: line998 + "yzw", err: smtp.ErrLineTooLong, finish: smtp.ErrLineTooLong, unterminated: true},
		{name: "1000 octets over several lines", in: line998 + "\r\n" + line998 + "\r\n"},
		{name: "bare LF", in: "a\nb\r\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
		{name: "lone LF", in: "\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
		{name: "bare CR", in: "a\rb\r\n", err: smtp.ErrBareCR, finish: smtp.ErrBareCR},
		{name: "CR CR LF", in: "\r\r\n", err: smtp.ErrBareCR, finish: smtp.ErrBareCR},
		{name: "CR before LF-less text", in: "ab\rc", err: smtp.ErrBareCR, finish: smtp.ErrBareCR, unterminated: true},
		{name: "LF CR LF", in: "\n\r\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
		{name: "first fault kept", in: "a\nb\rc\r\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
		{name: "first fault kept, CR first", in: "b\rc\na\r\n", err: smtp.ErrBareCR, finish: smtp.ErrBareCR},
		{name: "unterminated", in: "a\r\nbc", unterminated: true},
		{name: "dangling CR", in: "a\r\nb\r", finish: smtp.ErrBareCR, unterminated: true},
		{name: "only a CR", in: "\r", finish: smtp.ErrBareCR, unterminated: true},
		{name: "smuggling LF dot LF", in: "a\n.\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
		{name: "smuggling CR dot CR", in: "a\r.\r\n", err: smtp.ErrBareCR, finish: smtp.ErrBareCR},
		{name: "8-bit octets are text", in: "\x01\xff\x7f\r\n"},
		{name: "NUL", in: "a\x00b\r\n", err: smtp.ErrNUL, finish: smtp.ErrNUL},
		{name: "NUL alone", in: "\x00", err: smtp.ErrNUL, finish: smtp.ErrNUL, unterminated: true},
		{name: "CR NUL: the bare CR comes first", in: "a\r\x00\r\n", err: smtp.ErrBareCR, finish: smtp.ErrBareCR},
		{name: "NUL before a bare LF", in: "\x00\n", err: smtp.ErrNUL, finish: smtp.ErrNUL},
		{name: "NUL after a bare LF", in: "a\n\x00\r\n", err: smtp.ErrBareLF, finish: smtp.ErrBareLF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachSplit(tt.in, func(pieces []string) {
				var c smtp.TextChecker
				for _, p := range pieces {
					if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
						t.Fatalf("Write(%q) = (%d, %v), want (%d, nil)", p, n, err, len(p))
					}
				}
				if err := c.Err(); err != tt.err {
					t.Fatalf("pieces %q: Err() = %v, want %v", pieces, err, tt.err)
				}
				if got := c.Unterminated(); got != tt.unterminated {
					t.Fatalf("pieces %q: Unterminated() = %v, want %v", pieces, got, tt.unterminated)
				}
				if err := c.Finish(); err != tt.finish {
					t.Fatalf("pieces %q: Finish() = %v, want %v", pieces, err, tt.finish)
				}
				if err := c.Err(); err != tt.finish {
					t.Fatalf("pieces %q: Err() after Finish = %v, want %v", pieces, err, tt.finish)
				}
			})
		})
	}
}

// forEachSplit calls f with every split of s into one, two and three pieces (empty pieces
// included, as a BDAT 0 chunk would give).
func forEachSplit(s string, f func([]string)) {
	f([]string{s})
	for i := 0; i <= len(s); i++ {
		f([]string{s[:i], s[i:]})
		// Three pieces cost O(n²): for long inputs only split near the interesting octets.
		for j := i; j <= len(s); j++ {
			if len(s) > 64 && !near(s, i) && !near(s, j) {
				continue
			}
			f([]string{s[:i], s[i:j], s[j:]})
		}
	}
}

// near reports whether position i of s is within two octets of a CR, an LF, or an end.
func near(s string, i int) bool {
	for k := i - 2; k <= i+2; k++ {
		if k <= 0 || k >= len(s) || s[k] == '\r' || s[k] == '\n' {
			return true
		}
	}
	return false
}
