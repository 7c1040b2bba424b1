package maildir

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// convert runs in through an lfWriter, feeding it from r.
func convert(t testing.TB, r io.Reader) (string, int64) {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16) // Small, so the bufio paths are exercised too.
	lw := &lfWriter{w: bw}
	if _, err := io.Copy(lw, r); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if err := lw.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return out.String(), lw.n
}

func TestLFWriter(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no line endings", "hello", "hello"},
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"only crlf", "\r\n\r\n\r\n", "\n\n\n"},
		{"lone lf kept", "a\nb\r\n", "a\nb\n"},
		{"lone cr kept", "a\rb\r\n", "a\rb\n"},
		{"cr cr lf", "a\r\r\nb", "a\r\nb"},
		{"lf cr", "a\n\rb", "a\n\rb"},
		{"trailing cr", "a\r", "a\r"},
		{"trailing cr cr", "a\r\r", "a\r\r"},
		{"leading lf", "\na", "\na"},
		{"binary", "\x00\xff\r\n\x80", "\x00\xff\n\x80"},
	}
	readers := []struct {
		name string
		wrap func(string) io.Reader
	}{
		{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
		// OneByteReader splits every CRLF pair across two Writes.
		{"one byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		{"half", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				got, n := convert(t, rd.wrap(tt.in))
				if got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
				if n != int64(len(tt.want)) {
					t.Errorf("count %d, want %d", n, len(tt.want))
				}
			})
		}
	}
}

// FuzzLFWriter checks the streaming conversion against the whole-buffer one for any input and
// any split into writes.
func FuzzLFWriter(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n.\r\n"), uint8(1))
	f.Add([]byte("a\r\r\n\rb\n\r"), uint8(2))
	f.Add([]byte("\r"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		want := string(bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")))
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		lw := &lfWriter{w: bw}
		step := int(chunk)%17 + 1
		for p := in; len(p) > 0; {
			k := min(step, len(p))
			if n, err := lw.Write(p[:k]); err != nil || n != k {
				t.Fatalf("Write = %d, %v", n, err)
			}
			p = p[k:]
		}
		if err := lw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("chunk %d: got %q, want %q", step, out.String(), want)
		}
		if lw.n != int64(len(want)) {
			t.Fatalf("count %d, want %d", lw.n, len(want))
		}
	})
}
