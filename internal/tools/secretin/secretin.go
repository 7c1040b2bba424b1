// Package secretin reads what the command-line tools take from standard input: passwords and
// tokens (from the terminal without echo when standard input is one, else from its first
// line), and the lines a user pastes (a server's 334 lines for tern auth). It is the one reader
// of secrets in tern: every read is bounded by MaxLine, and a secret never appears in an error.
package secretin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// MaxLine bounds a line of standard input, the line end included: a password, an OAuth token
// (Google's are about 2 KiB) or a server message pasted by hand (a GSSAPI AP-REP in base64 is a
// few KiB). Longer is a mistake (a file piped in by accident), not a secret.
const MaxLine = 64 << 10

// Errors of Secret; the caller words them for its flags.
var (
	// ErrNoLine: standard input ended before the first line (an empty line is a line).
	ErrNoLine = errors.New("secretin: standard input is empty")
	// ErrNotTerminal: Ask.TerminalOnly and standard input is not a terminal.
	ErrNotTerminal = errors.New("secretin: standard input is not a terminal")
	// ErrMismatch: Ask.Confirm and the two answers differ.
	ErrMismatch = errors.New("secretin: the two entries do not match")
	// ErrTooLong: a line is longer than MaxLine.
	ErrTooLong = fmt.Errorf("secretin: a line of standard input is longer than %d octets", MaxLine)
)

// Terminal reads a line from a terminal without echo: term.ReadPassword on standard input, or
// a fake in tests.
type Terminal func() ([]byte, error)

// Input is standard input, read by lines. Lines and secrets come from the same buffer, so that
// what follows the first line (a message for tern send --data -, SCRAM's server lines) is kept.
type Input struct {
	r      *bufio.Reader
	term   Terminal  // nil when standard input is not a terminal
	prompt io.Writer // where prompts go: standard error
}

// New reads stdin; when it is a terminal, secrets are read from it without echo, after a
// prompt on prompt (standard error).
func New(stdin io.Reader, prompt io.Writer) *Input {
	var t Terminal
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		t = func() ([]byte, error) { return term.ReadPassword(fd) }
	}
	return NewWithTerminal(stdin, prompt, t)
}

// NewWithTerminal is New with the terminal given: t nil for none (tests fake one).
func NewWithTerminal(stdin io.Reader, prompt io.Writer, t Terminal) *Input {
	return &Input{r: bufio.NewReader(stdin), term: t, prompt: prompt}
}

// IsTerminal reports whether standard input is a terminal (prompts are then worth printing).
func (in *Input) IsTerminal() bool { return in.term != nil }

// Reader is what is left of standard input after the lines read.
func (in *Input) Reader() io.Reader { return in.r }

// ReadLine reads one line without its line end ("\n" or "\r\n"). The last line may lack one.
// At the end of input it returns io.EOF, with no line.
func (in *Input) ReadLine() (string, error) {
	var line []byte
	for {
		chunk, err := in.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return "", ErrTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = nil
		}
		return strings.TrimRight(string(line), "\r\n"), err
	}
}

// ReadAll reads the rest of standard input, at most MaxLine octets (tern auth encode).
func (in *Input) ReadAll() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(in.r, MaxLine+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxLine {
		return nil, fmt.Errorf("secretin: standard input is longer than %d octets", MaxLine)
	}
	return b, nil
}

// Ask says how to read one secret.
type Ask struct {
	// What is the prompt: "Password", "Token".
	What string
	// Stdin reads the first line of standard input even when it is a terminal
	// (--password-stdin).
	Stdin bool
	// TerminalOnly refuses standard input that is not a terminal unless Stdin is set: for
	// setting a password, where a pipe given by accident must not become one.
	TerminalOnly bool
	// Confirm asks twice on a terminal (setting a password, where a typo locks the user out).
	Confirm bool
}

// Secret reads a secret: from the terminal without echo (after a prompt), or from the first
// line of standard input when a.Stdin or when it is not a terminal.
func (in *Input) Secret(a Ask) (string, error) {
	if a.Stdin || in.term == nil {
		if in.term == nil && a.TerminalOnly && !a.Stdin {
			return "", ErrNotTerminal
		}
		s, err := in.ReadLine()
		if errors.Is(err, io.EOF) {
			return "", ErrNoLine
		}
		return s, err
	}
	s, err := in.ask(a.What + ": ")
	if err != nil || !a.Confirm {
		return s, err
	}
	again, err := in.ask("Again: ")
	if err != nil {
		return "", err
	}
	if again != s {
		return "", ErrMismatch
	}
	return s, nil
}

// ask prompts on the terminal and reads without echo.
func (in *Input) ask(prompt string) (string, error) {
	// A prompt that does not show is no reason to fail: the read still works.
	_, _ = io.WriteString(in.prompt, prompt)
	b, err := in.term()
	_, _ = io.WriteString(in.prompt, "\n") // the user's Enter was not echoed
	if err != nil {
		return "", fmt.Errorf("secretin: reading from the terminal: %w", err)
	}
	if len(b) > MaxLine {
		return "", ErrTooLong
	}
	return string(b), nil
}
