package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/config"

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

// setPassword is the RunE of a command that sets the password of its one argument (tern user
// add/passwd, tern admin add/passwd): it loads the configuration, reads the password as
// --password-stdin says, and hands both to set.
func setPassword(std stdio, c *common, fromStdin *bool, set func(ctx context.Context, cfg config.Config, name, password string, w io.Writer) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		cfg, err := c.load()
		if err != nil {
			return err
		}
		pw, err := readPassword(std.in, std.err, *fromStdin)
		if err != nil {
			return err
		}
		return set(context.Background(), cfg, args[0], pw, std.out)
	}
}
