package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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
		// Without a big buffer, and with one (32 octets: the reader's 16 are read straight
		// into it once the reader is empty, and never more than the chunk).
		for _, big := range []int{0, 32} {
			t.Run(fmt.Sprintf("%s/big=%d", tc.name, big), func(t *testing.T) {
				src := &countReads{r: strings.NewReader(input)}
				br := bufio.NewReaderSize(src, 16)
				w := &failAfter{limit: tc.limit}
				got, err := copyBuffered(w, br, tc.n, make([]byte, big))
				want, leftOver := tc.want, tc.leftOver
				if big > 0 && tc.wantErr == errFull {
					// Read straight into big in pieces of 32: the second one, which the
					// writer took 18 octets of, was taken from the reader whole.
					want, leftOver = 64, 36
				}
				if got != want || !errors.Is(err, tc.wantErr) {
					t.Fatalf("copied %d, %v; want %d, %v", got, err, want, tc.wantErr)
				}
				if w.buf.String() != input[:min(got, int64(tc.limit))] {
					t.Errorf("wrote %q", w.buf.String())
				}
				if big > 0 && tc.name == "all" && src.n > 4 {
					t.Errorf("%d reads for 100 octets in reads of up to 32", src.n)
				}
				rest, _ := io.ReadAll(br)
				if len(rest) != leftOver || string(rest) != input[len(input)-leftOver:] {
					t.Errorf("left %q", rest)
				}
			})
		}
	}
}

// countReads counts the reads of r.
type countReads struct {
	r io.Reader
	n int
}

func (c *countReads) Read(p []byte) (int, error) {
	c.n++
	return c.r.Read(p)
}
