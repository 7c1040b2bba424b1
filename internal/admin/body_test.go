package admin

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestFrames: what frameWriter writes, readFrames reads back whole; a stream without its last
// frame is cut short, never taken as whole.
func TestFrames(t *testing.T) {
	for _, n := range []int{0, 1, maxFrame - 1, maxFrame, maxFrame + 1, 3*maxFrame + 7} {
		msg := bytes.Repeat([]byte("0123456789\r\n"), n/12+1)[:n]
		var wire bytes.Buffer
		fw := frameWriter{&wire}
		if _, err := io.Copy(fw, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		whole := append([]byte(nil), wire.Bytes()...)
		if err := fw.end(); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := readFrames(bytes.NewReader(wire.Bytes()), &got); err != nil || !bytes.Equal(got.Bytes(), msg) {
			t.Errorf("%d octets: read back %d, %v", n, got.Len(), err)
		}
		for _, cut := range [][]byte{whole, wire.Bytes()[:max(0, wire.Len()-1)]} {
			if err := readFrames(bytes.NewReader(cut), io.Discard); !errors.Is(err, ErrCutShort) {
				t.Errorf("%d octets, %d of the stream: %v, want ErrCutShort", n, len(cut), err)
			}
		}
	}
	if err := readFrames(strings.NewReader("\xff\xff\xff\xff"), io.Discard); err == nil || errors.Is(err, ErrCutShort) {
		t.Errorf("an oversized frame: %v", err)
	}
}

// FuzzReadFrames: any stream from the socket is read without panic, and what comes out of a
// stream read whole is no longer than the stream.
func FuzzReadFrames(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x03abc\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x05ab"))
	f.Add([]byte("\x00\x01\x00\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := readFrames(bytes.NewReader(in), &out); err == nil && out.Len() > len(in) {
			t.Errorf("%d octets out of %d in", out.Len(), len(in))
		}
	})
}
