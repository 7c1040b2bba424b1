package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// failAfter accepts limit octets, then fails.
type failAfter struct {
	buf   bytes.Buffer
	limit int
}

var errFull = errors.New("full")

func (f *failAfter) Write(p []byte) (int, error) {
	if room := f.limit - f.buf.Len(); len(p) > room {
		f.buf.Write(p[:room])
		return room, errFull
	}
	return f.buf.Write(p)
}

// copyBuffered copies as io.CopyN does, across refills of a small reader, and leaves what it
// did not copy in the reader.
func TestCopyBuffered(t *testing.T) {
	input := strings.Repeat("0123456789", 10) // 100 octets
	for _, tc := range []struct {
		name     string
		n        int64
		limit    int // of the writer
		want     int64
		wantErr  error
		leftOver int // octets still readable after the copy
	}{
		{"all", 100, 1000, 100, nil, 0},
		{"part", 37, 1000, 37, nil, 63},
		{"none", 0, 1000, 0, nil, 100},
		{"early-eof", 150, 1000, 100, io.EOF, 0},
		{"writer-fails", 100, 50, 50, errFull, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(input), 16)
			w := &failAfter{limit: tc.limit}
			got, err := copyBuffered(w, br, tc.n)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("copied %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
			if w.buf.String() != input[:got] {
				t.Errorf("wrote %q", w.buf.String())
			}
			rest, _ := io.ReadAll(br)
			if len(rest) != tc.leftOver || string(rest) != input[len(input)-tc.leftOver:] {
				t.Errorf("left %q", rest)
			}
		})
	}
}
