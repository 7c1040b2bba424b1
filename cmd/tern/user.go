package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tern-mail/tern/internal/app"
)

func newUserCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "add, delete, list accounts and change their passwords",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	// sub is a user subcommand taking the common flags; withPassword adds --password-stdin.
	sub := func(use, short string, min, max int, withPassword bool, do func(cfg configFn, args []string, pwStdin bool) error) *cobra.Command {
		var c common
		var pwStdin bool
		sc := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  argsUsage(min, max, "tern user "+use),
			RunE: func(cmd *cobra.Command, args []string) error {
				return do(c.load, args, pwStdin)
			},
		}
		c.register(sc.Flags())
		if withPassword {
			sc.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
		}
		return sc
	}
	ctx := context.Background()
	cmd.AddCommand(
		sub("add ADDRESS", "add an account (password prompted, or --password-stdin)", 1, 1, true, func(load configFn, args []string, pwStdin bool) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			pw, err := readPassword(std.in, std.err, pwStdin)
			if err != nil {
				return err
			}
			return app.UserAdd(ctx, cfg, args[0], pw, std.out)
		}),
		sub("passwd ADDRESS", "change an account's password", 1, 1, true, func(load configFn, args []string, pwStdin bool) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			pw, err := readPassword(std.in, std.err, pwStdin)
			if err != nil {
				return err
			}
			return app.UserPasswd(ctx, cfg, args[0], pw, std.out)
		}),
		sub("del ADDRESS", "delete an account", 1, 1, false, func(load configFn, args []string, _ bool) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return app.UserDel(ctx, cfg, args[0], std.out)
		}),
		sub("list", "list accounts", 0, 0, false, func(load configFn, args []string, _ bool) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return app.UserList(ctx, cfg, std.out)
		}),
	)
	return cmd
}

// readPassword reads the password from the first line of stdin, or from the terminal without
// echo (asked twice).
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		switch {
		case errors.Is(err, io.EOF) && line == "":
			return "", errors.New("no password on standard input (--password-stdin reads its first line)")
		case err != nil && !errors.Is(err, io.EOF):
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("%w: standard input is not a terminal; use --password-stdin", errUsage)
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	pw, err := ask("Password: ")
	if err != nil {
		return "", err
	}
	again, err := ask("Again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}
