package secretin

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// fakeTerminal answers each read with the next of answers, and counts the reads.
func fakeTerminal(answers ...string) (Terminal, *int) {
	n := 0
	return func() ([]byte, error) {
		if n >= len(answers) {
			return nil, io.EOF
		}
		n++
		return []byte(answers[n-1]), nil
	}, &n
}

func TestSecret(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stdin    string
		terminal []string // nil: standard input is not a terminal
		ask      Ask
		want     string
		err      error
		prompts  string // what went to standard error
		rest     string // what is left of standard input
	}{
		{name: "pipe: first line", stdin: "s3cret\nDATA\n", ask: Ask{What: "Password"}, want: "s3cret", rest: "DATA\n"},
		{name: "pipe: CRLF", stdin: "s3cret\r\n", ask: Ask{What: "Password"}, want: "s3cret"},
		{name: "pipe: no line end", stdin: "s3cret", ask: Ask{What: "Password"}, want: "s3cret"},
		{name: "pipe: empty line is an empty password", stdin: "\n", ask: Ask{What: "Password"}, want: ""},
		{name: "pipe: empty", stdin: "", ask: Ask{What: "Password"}, err: ErrNoLine},
		{name: "pipe: terminal only", stdin: "s3cret\n", ask: Ask{What: "Password", TerminalOnly: true}, err: ErrNotTerminal, rest: "s3cret\n"},
		{name: "pipe: terminal only, --password-stdin", stdin: "s3cret\n", ask: Ask{What: "Password", TerminalOnly: true, Stdin: true}, want: "s3cret"},
		{name: "pipe: too long", stdin: strings.Repeat("x", MaxLine+1) + "\n", ask: Ask{What: "Password"}, err: ErrTooLong},
		{name: "pipe: just fits", stdin: strings.Repeat("x", MaxLine-1) + "\n", ask: Ask{What: "Password"}, want: strings.Repeat("x", MaxLine-1)},
		{name: "terminal", terminal: []string{"s3cret"}, stdin: "unread\n", ask: Ask{What: "Token"}, want: "s3cret", prompts: "Token: \n", rest: "unread\n"},
		{name: "terminal, --password-stdin", terminal: []string{"typed"}, stdin: "piped\n", ask: Ask{What: "Password", Stdin: true}, want: "piped"},
		{name: "terminal, confirmed", terminal: []string{"s3cret", "s3cret"}, ask: Ask{What: "Password", Confirm: true}, want: "s3cret", prompts: "Password: \nAgain: \n"},
		{name: "terminal, mismatch", terminal: []string{"s3cret", "s3cert"}, ask: Ask{What: "Password", Confirm: true}, err: ErrMismatch, prompts: "Password: \nAgain: \n"},
		{name: "terminal closed", terminal: []string{}, ask: Ask{What: "Password"}, err: io.EOF, prompts: "Password: \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var term Terminal
			if tc.terminal != nil {
				term, _ = fakeTerminal(tc.terminal...)
			}
			var prompts strings.Builder
			in := NewWithTerminal(strings.NewReader(tc.stdin), &prompts, term)
			got, err := in.Secret(tc.ask)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Secret = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			if err != nil && tc.want == "" && strings.Contains(err.Error(), "s3c") {
				t.Errorf("the error shows the secret: %v", err)
			}
			if prompts.String() != tc.prompts {
				t.Errorf("prompts %q, want %q", prompts.String(), tc.prompts)
			}
			if tc.rest != "" {
				rest, _ := io.ReadAll(in.Reader())
				if string(rest) != tc.rest {
					t.Errorf("left %q, want %q", rest, tc.rest)
				}
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	in := NewWithTerminal(strings.NewReader("334 cj1h\r\n\nlast"), io.Discard, nil)
	for _, want := range []string{"334 cj1h", "", "last"} {
		if got, err := in.ReadLine(); err != nil || got != want {
			t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := in.ReadLine(); !errors.Is(err, io.EOF) || got != "" {
		t.Fatalf("at the end: %q, %v; want io.EOF", got, err)
	}
}

func TestReadAll(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fail bool
	}{{"", false}, {"a\nb", false}, {strings.Repeat("x", MaxLine), false}, {strings.Repeat("x", MaxLine+1), true}} {
		got, err := NewWithTerminal(strings.NewReader(tc.in), io.Discard, nil).ReadAll()
		if (err != nil) != tc.fail || (!tc.fail && string(got) != tc.in) {
			t.Errorf("ReadAll of %d octets: %d octets, %v", len(tc.in), len(got), err)
		}
	}
}

// FuzzReadLine: whatever standard input holds, lines come back without line ends, never
// longer than MaxLine, and together they are the input without its line ends (up to a line too long).
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{"", "\n", "pw\r\n334 cj1h\n", "no end", "\r\r\n\n"} { // MaxLine itself: TestSecret
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewWithTerminal(strings.NewReader(string(in)), io.Discard, nil)
		// What the lines must be: the input cut after each line feed, each piece without its
		// line end (the trailing CRs and LF).
		var want []string
		for _, p := range strings.SplitAfter(string(in), "\n") {
			if p != "" {
				want = append(want, strings.TrimRight(p, "\r\n"))
			}
		}
		var got []string
		for {
			line, err := r.ReadLine()
			if errors.Is(err, io.EOF) || errors.Is(err, ErrTooLong) {
				if line != "" {
					t.Fatalf("a line %q with %v", line, err)
				}
				if errors.Is(err, io.EOF) && !slices.Equal(got, want) {
					t.Fatalf("lines %q, want %q", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(line) > MaxLine || strings.Contains(line, "\n") {
				t.Fatalf("line of %d octets, or with a line feed", len(line))
			}
			got = append(got, line)
		}
	})
}
