package msghdr

import (
	"reflect"
	"strings"
	"testing"
)

func tap(in string, piece int) *Tap {
	t := NewTap("From")
	for len(in) > 0 {
		n := min(piece, len(in))
		_, _ = t.Write([]byte(in[:n])) // never fails
		in = in[n:]
	}
	return t
}

func TestTap(t *testing.T) {
	long := strings.Repeat("x", MaxTapField)
	tests := []struct {
		name, in string
		want     []string
		count    int
	}{
		{"one", "Subject: hi\r\nFrom: a@example.com\r\nTo: b@example.net\r\n\r\nFrom: body@x\r\n", []string{" a@example.com\r\n"}, 1},
		{"folded", "from :\r\n Joe\r\n\t<joe@example.com>\r\nTo: x\r\n\r\n", []string{"\r\n Joe\r\n\t<joe@example.com>\r\n"}, 1},
		{"three", "From: a\r\nFROM: b\r\nFrom: c\r\n\r\n", []string{" a\r\n", " b\r\n"}, 3},
		{"none", "Subject: x\r\n\r\nFrom: a@b\r\n", nil, 0},
		{"not a field ends the section", "Subject: x\r\nnot a field\r\nFrom: a@b\r\n", nil, 0},
		{"no line break at the end", "From: a@example.com", []string{" a@example.com"}, 1},
		{"LF only", "From: a@example.com\n\n", []string{" a@example.com\n"}, 1},
		{"too long", "From: " + long + "\r\nTo: b\r\n\r\n", []string{""}, 1},
		{"too long when folded", "From: a\r\n " + long + "\r\n\r\n", []string{""}, 1},
		{"Fromage is another field", "Fromage: a\r\n\r\n", nil, 0},
	}
	for _, tc := range tests {
		for _, piece := range []int{1, 3, len(tc.in)} {
			tp := tap(tc.in, piece)
			if got := tp.Fields(); !reflect.DeepEqual(got, tc.want) || tp.Count() != tc.count {
				t.Errorf("%s (pieces of %d): %q, %d; want %q, %d", tc.name, piece, got, tp.Count(), tc.want, tc.count)
			}
		}
	}
}

// FuzzTap: the fields do not depend on how the message is cut into writes.
func FuzzTap(f *testing.F) {
	f.Add("From: a@example.com\r\nTo: b\r\n\r\nbody\r\n", 3)
	f.Add("From:\r\n a\r\nFrom: b\r\n\r\n", 1)
	f.Fuzz(func(t *testing.T, in string, piece int) {
		if piece <= 0 {
			piece = 1
		}
		whole, cut := tap(in, len(in)+1), tap(in, piece)
		if a, b := whole.Fields(), cut.Fields(); !reflect.DeepEqual(a, b) || whole.Count() != cut.Count() {
			t.Fatalf("whole %q (%d), in pieces of %d %q (%d)", a, whole.Count(), piece, b, cut.Count())
		}
	})
}

// BenchmarkTap: the cost the From tap adds to a judged 5 KB message as it streams, in the
// writes of 32 KiB or less the session makes.
func BenchmarkTap(b *testing.B) {
	msg := []byte("Received: from x\r\nFrom: \"Alice\" <alice@example.org>\r\nTo: bob@example.test\r\nSubject: bench\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 75))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		t := NewTap("From")
		_, _ = t.Write(msg) // never fails
		if len(t.Fields()) != 1 {
			b.Fatal("no From")
		}
	}
}
