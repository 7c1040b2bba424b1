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

// dotWrite writes in through a DotWriter in pieces of size chunk (0: all at once) and closes it.
func dotWrite(in string, normalize bool, chunk int) (string, error) {
	var out bytes.Buffer
	d := smtp.NewDotWriter(&out, normalize)
	if chunk <= 0 {
		chunk = len(in) + 1
	}
	for p := []byte(in); len(p) > 0; {
		n := min(chunk, len(p))
		k, err := d.Write(p[:n])
		if err != nil {
			return out.String(), err
		}
		if k != n {
			return out.String(), errors.New("short write without an error")
		}
		p = p[n:]
	}
	err := d.Close()
	return out.String(), err
}

func TestDotWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		normalize bool
		out       string
		err       error
	}{
		{name: "seed message", in: seedMessage, out: seedMessage + ".\r\n"},
		{name: "empty message", in: "", out: ".\r\n"},
		{name: "no final CRLF", in: "a\r\nb", out: "a\r\nb\r\n.\r\n"},
		{name: "leading dot on the first line", in: ".x\r\n", out: "..x\r\n.\r\n"},
		{name: "line that is a dot", in: "a\r\n.\r\nb\r\n", out: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "several dots", in: "...\r\n", out: "....\r\n.\r\n"},
		{name: "dot not at line start", in: "a.\r\n x.\r\n", out: "a.\r\n x.\r\n.\r\n"},
		{name: "final line is a dot without CRLF", in: "a\r\n.", out: "a\r\n..\r\n.\r\n"},
		{name: "empty lines", in: "\r\n\r\n", out: "\r\n\r\n.\r\n"},
		{name: "bare LF refused", in: "a\nb\r\n", err: smtp.ErrBareLF},
		{name: "bare CR refused", in: "a\rb\r\n", err: smtp.ErrBareCR},
		{name: "CR at the end refused", in: "a\r", err: smtp.ErrBareCR},
		{name: "CR CR LF refused", in: "a\r\r\n", err: smtp.ErrBareCR},
		{name: "smuggling with bare LF refused", in: "hello\n.\nMAIL FROM:<admin@bank.example>\r\n", err: smtp.ErrBareLF},
		{name: "LF normalized", in: "a\nb\n", normalize: true, out: "a\r\nb\r\n.\r\n"},
		{name: "mixed normalized", in: "a\r\nb\nc", normalize: true, out: "a\r\nb\r\nc\r\n.\r\n"},
		{name: "bare CR normalized", in: "a\rb", normalize: true, out: "a\r\nb\r\n.\r\n"},
		{name: "CR at the end normalized", in: "a\r", normalize: true, out: "a\r\n.\r\n"},
		{name: "CR CR LF normalized", in: "a\r\r\n", normalize: true, out: "a\r\n\r\n.\r\n"},
		{name: "LF CR normalized", in: "a\n\rb", normalize: true, out: "a\r\n\r\nb\r\n.\r\n"},
		{name: "dot after a bare LF is stuffed", in: "a\n.\n", normalize: true, out: "a\r\n..\r\n.\r\n"},
		{name: "dot after a bare CR is stuffed", in: "a\r.\r", normalize: true, out: "a\r\n..\r\n.\r\n"},
		{name: "smuggling normalized", in: "hello\n.\nMAIL FROM:<x@y>\r\n.\r\n", normalize: true,
			out: "hello\r\n..\r\nMAIL FROM:<x@y>\r\n..\r\n.\r\n"},
		{name: "CRLF kept when normalizing", in: seedMessage, normalize: true, out: seedMessage + ".\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range []int{0, 1, 2, 3, 7} {
				out, err := dotWrite(tt.in, tt.normalize, chunk)
				if !errors.Is(err, tt.err) {
					t.Fatalf("chunk %d: error %v, want %v", chunk, err, tt.err)
				}
				if tt.err == nil && out != tt.out {
					t.Fatalf("chunk %d: wrote %q, want %q", chunk, out, tt.out)
				}
				if tt.err != nil && strings.HasSuffix(out, "\r\n.\r\n") {
					t.Fatalf("chunk %d: data ended after an error: %q", chunk, out)
				}
			}
		})
	}
}

// A DotWriter's output read back by ReadData gives the message, and ends exactly at its end.
func TestDotWriterRoundTrip(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{seedMessage, "", ".\r\n", "..\r\n...\r\n", "a\r\n.\r\n.\r\nNOOP\r\n"} {
		out, err := dotWrite(msg, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		r := bufio.NewReader(strings.NewReader(out + "QUIT\r\n"))
		if _, err := smtp.ReadData(r, &got, 1<<20); err != nil {
			t.Fatalf("%q: ReadData: %v", msg, err)
		}
		if got.String() != msg {
			t.Fatalf("read back %q, want %q", got.String(), msg)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "QUIT\r\n" {
			t.Fatalf("%q: after the data: %q", msg, rest)
		}
	}
}

func TestDotWriterErrors(t *testing.T) {
	t.Parallel()
	t.Run("sticky", func(t *testing.T) {
		t.Parallel()
		d := smtp.NewDotWriter(io.Discard, false)
		if _, err := d.Write([]byte("a\n")); !errors.Is(err, smtp.ErrBareLF) {
			t.Fatalf("error %v, want ErrBareLF", err)
		}
		if _, err := d.Write([]byte("b\r\n")); !errors.Is(err, smtp.ErrBareLF) {
			t.Fatalf("second write: error %v, want ErrBareLF", err)
		}
		if err := d.Close(); !errors.Is(err, smtp.ErrBareLF) {
			t.Fatalf("Close: error %v, want ErrBareLF", err)
		}
	})
	t.Run("write after close", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		d := smtp.NewDotWriter(&out, false)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil || out.String() != ".\r\n" {
			t.Fatalf("second Close: %v, wrote %q", err, out.String())
		}
		if _, err := d.Write([]byte("x")); !errors.Is(err, smtp.ErrWriteAfterClose) {
			t.Fatalf("error %v, want ErrWriteAfterClose", err)
		}
	})
	t.Run("underlying writer fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		d := smtp.NewDotWriter(errWriter{boom}, true)
		if _, err := d.Write([]byte("abc")); !errors.Is(err, boom) {
			t.Fatalf("error %v, want %v", err, boom)
		}
		if err := d.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close: error %v, want %v", err, boom)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// FuzzDotWriter checks, for any text split anywhere, that what the writer sends is read back by
// the server's ReadData as the text with its line ends normalized, and that the data ends
// exactly where the writer ended it: nothing in a message can end the data early.
func FuzzDotWriter(f *testing.F) {
	for _, s := range seedTexts {
		f.Add(s, uint8(0))
		f.Add(s, uint8(3))
	}
	f.Add("a\nb\rc\r\n.\n.\r\n..\r", uint8(1))
	f.Fuzz(func(t *testing.T, in string, split uint8) {
		want := normalizeLineEnds(in)
		out, err := dotWrite(in, true, int(split))
		if err != nil {
			t.Fatalf("normalizing: %v", err)
		}
		clean := in == want || in+"\r\n" == want // no bare CR or LF
		strict, err := dotWrite(in, false, int(split))
		switch {
		case err == nil && !clean:
			t.Fatalf("strict mode accepted %q, which has bare line ends", in)
		case err != nil && clean:
			t.Fatalf("strict mode refused %q: %v", in, err)
		case err == nil && strict != out:
			t.Fatalf("strict %q and normalizing %q differ on %q", strict, out, in)
		}
		if bytes.ContainsAny([]byte(strings.ReplaceAll(out, "\r\n", "")), "\r\n") {
			t.Fatalf("bare CR or LF in the output %q", out)
		}
		const trailer = "QUIT\r\n"
		r := bufio.NewReaderSize(strings.NewReader(out+trailer), 16)
		var got bytes.Buffer
		_, err = smtp.ReadData(r, &got, 1<<30)
		// The writer passes long lines and NULs on (the server refuses them); it never lets one
		// end the data early.
		if err != nil && !errors.Is(err, smtp.ErrLineTooLong) && !(errors.Is(err, smtp.ErrNUL) && strings.IndexByte(in, 0) >= 0) {
			t.Fatalf("ReadData of %q: %v", out, err)
		}
		if rest, _ := io.ReadAll(r); string(rest) != trailer {
			t.Fatalf("the data of %q ended early: %q left", in, rest)
		}
		if err == nil && got.String() != want {
			t.Fatalf("read back %q, want %q", got.String(), want)
		}
	})
}

// normalizeLineEnds is the model of the normalizing writer: every CRLF, bare CR and bare LF is
// one line end, and a final line without one gets one.
func normalizeLineEnds(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n':
			b.WriteString("\r\n")
			i++
		case s[i] == '\r' || s[i] == '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(s[i])
		}
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\r\n") {
		b.WriteString("\r\n")
	}
	return b.String()
}
