package msghdr

import (
	"strings"
	"testing"
)

// reference adds the fields to a whole message, line by line: the rules of the package doc,
// written without streaming, to check the Adder against.
func reference(in string) string {
	var date, id bool
	fields := func() string {
		s := ""
		if !date {
			s += dateF
		}
		if !id {
			s += idF
		}
		return s
	}
	for pos := 0; ; {
		rest := in[pos:]
		switch {
		case rest == "", rest[0] == '\n', strings.HasPrefix(rest, "\r\n"):
			return in[:pos] + fields() + rest // end of message, or the empty line
		case rest[0] == ' ' || rest[0] == '\t':
			// a continuation line
		default:
			j := 0
			for j < len(rest) && isFtext(rest[j]) {
				j++
			}
			for j > 0 && j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
				j++
			}
			if j == 0 || j > MaxName || j == len(rest) || rest[j] != ':' {
				return in[:pos] + fields() + rest // not a header field
			}
			name := strings.TrimRight(rest[:j], " \t")
			date = date || strings.EqualFold(name, "Date")
			id = id || strings.EqualFold(name, "Message-ID")
		}
		nl := strings.IndexByte(rest, '\n')
		if nl < 0 {
			return in + "\r\n" + fields() // a header field without its CRLF at the end
		}
		pos += nl + 1
	}
}

// FuzzAdder checks the Adder against reference, for the message written at once and in pieces
// of every size the fuzzer picks, and checks Added.
func FuzzAdder(f *testing.F) {
	for _, s := range []string{
		"Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n",
		"Date: x\r\nMessage-ID: <y@z>\r\n\r\nbody\r\n",
		"dAtE : x\r\n folded\r\n\r\n",
		"From a@b Sat Dec  5\r\nSubject: a\r\n\r\n",
		"Subject: a", "\r\n", "", "\r", "Subject: a\n\nb", "X:\r\n\rx",
		strings.Repeat("n", MaxName) + ": v\r\n\r\n",
		strings.Repeat("n", MaxName+1) + ": v\r\n\r\n",
	} {
		f.Add(s, uint8(1))
		f.Add(s, uint8(5))
	}
	f.Fuzz(func(t *testing.T, in string, piece uint8) {
		want := reference(in)
		for _, n := range []int{0, int(piece)} {
			got, added := add(t, in, n)
			if got != want {
				t.Fatalf("pieces of %d:\n got %q\nwant %q", n, got, want)
			}
			if added != int64(len(got)-len(in)) {
				t.Fatalf("Added %d, but %d octets were added", added, len(got)-len(in))
			}
		}
	})
}
