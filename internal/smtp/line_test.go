package smtp_test

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tern-mail/tern/internal/smtp"
)

// newReader returns a bufio.Reader over s; size 0 means the default buffer size. bufio never
// goes below 16 octets, which is what the small-buffer cases use to force refills.
func newReader(s string, size int) *bufio.Reader {
	if size == 0 {
		return bufio.NewReader(strings.NewReader(s))
	}
	return bufio.NewReaderSize(strings.NewReader(s), size)
}

// readResult is one expected ReadLine outcome.
type readResult struct {
	line string
	err  error
}

func ok(line string) readResult        { return readResult{line: line} }
func fails(err error) readResult       { return readResult{err: err} }
func lineOf(c byte, n int) string      { return strings.Repeat(string(c), n) }
func crlfLines(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

func TestReadLine(t *testing.T) {
	const max = 32 // CRLF included: 30 octets of text fit
	tests := []struct {
		name    string
		in      string
		max     int // 0 means the const max above
		bufSize int // 0 means the bufio default
		want    []readResult
	}{
		{name: "one line", in: "HELO host.example.com\r\n", max: smtp.MaxCommandLine,
			want: []readResult{ok("HELO host.example.com"), fails(io.EOF)}},
		{name: "pipelined commands", in: crlfLines("MAIL FROM: <kenneth@oeey.com>", "RCPT TO: <bob@example.com>", "DATA"), max: smtp.MaxMailLine,
			want: []readResult{ok("MAIL FROM: <kenneth@oeey.com>"), ok("RCPT TO: <bob@example.com>"), ok("DATA"), fails(io.EOF)}},
		{name: "empty line", in: "\r\nNOOP\r\n",
			want: []readResult{ok(""), ok("NOOP"), fails(io.EOF)}},
		{name: "UTF-8 is passed through", in: "RCPT TO:<bjørn@exämple.test>\r\n",
			want: []readResult{ok("RCPT TO:<bjørn@exämple.test>")}},
		{name: "exactly max", in: lineOf('a', max-2) + "\r\nNOOP\r\n",
			want: []readResult{ok(lineOf('a', max-2)), ok("NOOP")}},
		{name: "max plus one is refused and the next line still reads", in: lineOf('a', max-1) + "\r\nNOOP\r\n",
			want: []readResult{fails(smtp.ErrLineTooLong), ok("NOOP"), fails(io.EOF)}},
		{name: "far too long, spanning refills", in: lineOf('x', 5000) + "\r\nQUIT\r\n", bufSize: 16,
			want: []readResult{fails(smtp.ErrLineTooLong), ok("QUIT"), fails(io.EOF)}},
		{name: "far too long, default buffer", in: lineOf('x', 10000) + "\r\nQUIT\r\n",
			want: []readResult{fails(smtp.ErrLineTooLong), ok("QUIT"), fails(io.EOF)}},
		{name: "long line within max spanning refills", in: lineOf('y', 100) + "\r\n" + lineOf('z', 15) + "\r\n", max: 1000, bufSize: 16,
			want: []readResult{ok(lineOf('y', 100)), ok(lineOf('z', 15)), fails(io.EOF)}},
		{name: "exactly max spanning refills", in: lineOf('a', 998) + "\r\nNOOP\r\n", max: 1000, bufSize: 16,
			want: []readResult{ok(lineOf('a', 998)), ok("NOOP")}},
		{name: "max plus one spanning refills", in: lineOf('a', 999) + "\r\nNOOP\r\n", max: 1000, bufSize: 16,
			want: []readResult{fails(smtp.ErrLineTooLong), ok("NOOP")}},
		{name: "CRLF split across a refill", in: lineOf('b', 15) + "\r\n" + "c\r\n", max: 100, bufSize: 16,
			want: []readResult{ok(lineOf('b', 15)), ok("c")}},
		{name: "too long and ended by a bare LF", in: lineOf('a', 40) + "\nQUIT\r\n",
			want: []readResult{fails(smtp.ErrBareLF), ok("QUIT")}},
		{name: "too long, bare LF after a refill", in: lineOf('a', 40) + "\nQUIT\r\n", bufSize: 16,
			want: []readResult{fails(smtp.ErrBareLF), ok("QUIT")}},
		{name: "too long, CR and LF split by a refill", in: lineOf('a', 47) + "\r\nQUIT\r\n", bufSize: 16,
			want: []readResult{fails(smtp.ErrLineTooLong), ok("QUIT")}},
		{name: "too long, LF alone after a refill", in: lineOf('a', 48) + "\nQUIT\r\n", bufSize: 16,
			want: []readResult{fails(smtp.ErrBareLF), ok("QUIT")}},
		{name: "NUL is passed through", in: "NO\x00OP\r\n",
			want: []readResult{ok("NO\x00OP")}},
		{name: "bare LF", in: "NOOP\nQUIT\r\n",
			want: []readResult{fails(smtp.ErrBareLF), ok("QUIT")}},
		{name: "lone LF", in: "\n",
			want: []readResult{fails(smtp.ErrBareLF), fails(io.EOF)}},
		{name: "bare CR inside", in: "NO\rOP\r\nQUIT\r\n",
			want: []readResult{fails(smtp.ErrBareCR), ok("QUIT")}},
		{name: "CR CR LF", in: "\r\r\nQUIT\r\n",
			want: []readResult{fails(smtp.ErrBareCR), ok("QUIT")}},
		{name: "LF CR LF is a bare LF then an empty line", in: "a\n\r\n",
			want: []readResult{fails(smtp.ErrBareLF), ok("")}},
		{name: "CR at the end of the stream", in: "QUIT\r",
			want: []readResult{fails(io.ErrUnexpectedEOF)}},
		{name: "EOF mid-line", in: "QUIT",
			want: []readResult{fails(io.ErrUnexpectedEOF)}},
		{name: "EOF mid-line after a line", in: "NOOP\r\nQU",
			want: []readResult{ok("NOOP"), fails(io.ErrUnexpectedEOF)}},
		{name: "EOF in a too-long line", in: lineOf('a', 100), bufSize: 16,
			want: []readResult{fails(io.ErrUnexpectedEOF)}},
		{name: "EOF mid-line spanning refills", in: lineOf('a', 20), max: 100, bufSize: 16,
			want: []readResult{fails(io.ErrUnexpectedEOF)}},
		{name: "clean EOF", in: "",
			want: []readResult{fails(io.EOF), fails(io.EOF)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 32
			}
			r := newReader(tt.in, tt.bufSize)
			var scratch []byte
			for i, want := range tt.want {
				line, err := smtp.ReadLine(r, max, &scratch)
				if !errors.Is(err, want.err) {
					t.Fatalf("read %d: err = %v, want %v", i, err, want.err)
				}
				if err == nil && string(line) != want.line {
					t.Fatalf("read %d: line = %q, want %q", i, line, want.line)
				}
				if err != nil && line != nil {
					t.Errorf("read %d: line = %q with error %v, want nil", i, line, err)
				}
			}
		})
	}
}

// TestReadLineOneByteReads feeds the reader one octet per Read, the worst case for refills.
func TestReadLineOneByteReads(t *testing.T) {
	in := crlfLines("EHLO trogdor", lineOf('x', 600), "AUTH LOGIN", "a2VubmV0aC5idXJnZW5lcg==")
	r := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16)
	var scratch []byte
	want := []readResult{ok("EHLO trogdor"), fails(smtp.ErrLineTooLong), ok("AUTH LOGIN"), ok("a2VubmV0aC5idXJnZW5lcg=="), fails(io.EOF)}
	for i, w := range want {
		line, err := smtp.ReadLine(r, smtp.MaxCommandLine, &scratch)
		if !errors.Is(err, w.err) || err == nil && string(line) != w.line {
			t.Fatalf("read %d: (%q, %v), want (%q, %v)", i, line, err, w.line, w.err)
		}
	}
}

// TestReadLineReadError checks that an error of the underlying reader (a timeout, a reset) is
// returned as it is, not turned into a content error.
func TestReadLineReadError(t *testing.T) {
	errReset := errors.New("connection reset")
	tests := []struct {
		name    string
		in      string
		bufSize int
	}{
		{"before any octet", "", 0},
		{"mid-line", "MAIL FROM:<a@b", 0},
		{"mid-line spanning refills", lineOf('a', 40), 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := io.MultiReader(strings.NewReader(tt.in), iotest.ErrReader(errReset))
			r := bufio.NewReader(src)
			if tt.bufSize != 0 {
				r = bufio.NewReaderSize(src, tt.bufSize)
			}
			var scratch []byte
			line, err := smtp.ReadLine(r, smtp.MaxCommandLine, &scratch)
			if !errors.Is(err, errReset) {
				t.Fatalf("ReadLine = (%q, %v), want %v", line, err, errReset)
			}
		})
	}
}

// TestReadLineScratchReuse checks that a line assembled in scratch is not clobbered by the
// scratch buffer's previous contents and that scratch is reused.
func TestReadLineScratchReuse(t *testing.T) {
	in := crlfLines(lineOf('a', 40), lineOf('b', 20), "c")
	r := newReader(in, 16)
	scratch := make([]byte, 0, 64)
	for _, want := range []string{lineOf('a', 40), lineOf('b', 20), "c"} {
		line, err := smtp.ReadLine(r, 100, &scratch)
		if err != nil || string(line) != want {
			t.Fatalf("ReadLine = (%q, %v), want %q", line, err, want)
		}
	}
	if cap(scratch) != 64 {
		t.Errorf("scratch reallocated: cap %d, want 64", cap(scratch))
	}
}
