package main

import (
	"context"

	"github.com/spf13/cobra"

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
