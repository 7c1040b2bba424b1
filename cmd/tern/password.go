package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/tern-mail/tern/internal/tools/secretin"
)

// readPassword reads the password to set (tern user add, passwd): the first line of standard
// input with --password-stdin, else the terminal without echo, asked twice.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	pw, err := secretin.New(stdin, stderr).Secret(secretin.Ask{What: "Password", Stdin: fromStdin, TerminalOnly: true, Confirm: true})
	switch {
	case errors.Is(err, secretin.ErrNoLine):
		return "", errors.New("no password on standard input (--password-stdin reads its first line)")
	case errors.Is(err, secretin.ErrNotTerminal):
		return "", fmt.Errorf("%w: standard input is not a terminal; use --password-stdin", errUsage)
	case errors.Is(err, secretin.ErrMismatch):
		return "", errors.New("the passwords do not match")
	}
	return pw, err
}
