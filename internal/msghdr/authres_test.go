package msghdr

import (
	"bytes"
	"strings"
	"testing"
)

const ourID = "mx.example.test"

// removeReference removes the fields a Remover removes from a whole message: the header
// section is split into fields, and each Authentication-Results field is judged whole.
func removeReference(in string) string {
	var out strings.Builder
	pos := 0
	var field string // the Authentication-Results field being collected
	end := func() {
		if field != "" && !claims([]byte(field), ourID) {
			out.WriteString(field)
		}
		field = ""
	}
	for pos < len(in) {
		rest := in[pos:]
		nl := strings.IndexByte(rest, '\n')
		line := rest
		if nl >= 0 {
			line = rest[:nl+1]
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if field != "" {
				field += line
			} else {
				out.WriteString(line)
			}
		case line == "\n" || line == "\r\n" || !isField([]byte(line)):
			end()
			return out.String() + rest
		case isARName([]byte(line)):
			end()
			field = line
		default:
			end()
			out.WriteString(line)
		}
		pos += len(line)
	}
	end()
	return out.String()
}

func removeAll(t testing.TB, in string, piece int) (string, int64) {
	var b bytes.Buffer
	r := NewRemover(&b, ourID)
	for s := in; s != ""; {
		n := min(piece, len(s))
		if k, err := r.Write([]byte(s[:n])); err != nil || k != n {
			t.Fatalf("Write = %d, %v", k, err)
		}
		s = s[n:]
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), r.Removed()
}

func TestRemover(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Authentication-Results: mx.example.test; spf=pass\r\nSubject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
		{"authentication-results : (c) MX.Example.Test;\r\n\tdkim=pass\r\nSubject: a\r\n\r\n", "Subject: a\r\n\r\n"},
		{"Authentication-Results:\r\n \"mx.example.test\"; none\r\n\r\n", "\r\n"},
		{"Authentication-Results: other.example; spf=pass\r\n\r\n", "Authentication-Results: other.example; spf=pass\r\n\r\n"},
		{"Authentication-Results: mx.example.test.evil; spf=pass\r\n\r\n", "Authentication-Results: mx.example.test.evil; spf=pass\r\n\r\n"},
		{"Authentication-Results: (unclosed mx.example.test\r\n\r\n", "\r\n"},
		// Only the header section: the body is not looked at.
		{"Subject: a\r\n\r\nAuthentication-Results: mx.example.test; none\r\n", "Subject: a\r\n\r\nAuthentication-Results: mx.example.test; none\r\n"},
		{"Authentication-Results: mx.example.test; spf=pass", ""},
	} {
		for _, piece := range []int{1, 3, len(tc.in) + 1} {
			got, removed := removeAll(t, tc.in, piece)
			if got != tc.want || removed != int64(len(tc.in)-len(tc.want)) {
				t.Errorf("in pieces of %d:\n%q\ngives %q (removed %d), want %q", piece, tc.in, got, removed, tc.want)
			}
		}
	}
}

// TestRemoverLongLines: memory stays bounded by MaxLine; an over-long Authentication-Results
// field is removed, any other over-long line passes.
func TestRemoverLongLines(t *testing.T) {
	long := strings.Repeat("x", 2*MaxLine)
	in := "X-Long: " + long + "\r\nAuthentication-Results: (" + long + ") mx.example.test; none\r\nSubject: a\r\n\r\nbody"
	got, _ := removeAll(t, in, 4096)
	if want := "X-Long: " + long + "\r\nSubject: a\r\n\r\nbody"; got != want {
		t.Errorf("got %d octets, want %d", len(got), len(want))
	}
}

// FuzzRemover checks the Remover against removeReference, written at once and in pieces.
func FuzzRemover(f *testing.F) {
	for _, s := range []string{
		"Authentication-Results: mx.example.test; spf=pass\r\nSubject: a\r\n\r\nbody\r\n",
		"Authentication-Results: other; spf=pass\r\n folded\r\n\r\n",
		"A: b\r\n c\r\nAuthentication-Results: (x) \"mx.example.test\";\r\n\r\n",
		"From x\r\nAuthentication-Results: mx.example.test\r\n", "", "\r", "\n", "Authentication-Results:",
	} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, in string, piece int) {
		if piece <= 0 {
			piece = 1
		}
		want := removeReference(in)
		got, removed := removeAll(t, in, piece)
		if got != want {
			t.Fatalf("%q in pieces of %d:\ngot  %q\nwant %q", in, piece, got, want)
		}
		if removed != int64(len(in)-len(got)) {
			t.Fatalf("Removed = %d, want %d", removed, len(in)-len(got))
		}
	})
}
