package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

func newUserCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "add, delete, list and show accounts, and change their passwords",
		Long: `Accounts live in the data directory's accounts.db, or the store --accounts (accounts.url)
names, PostgreSQL for several nodes; a running server sees changes at once.
Only "tern user add" makes the data directory when it is missing, and only when the store is
in it: a store elsewhere needs no data directory.`,
		Example: `  tern user add bob@example.test
  tern user list --data /var/lib/tern`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(
		newUserSetCmd(std, true),
		newUserSetCmd(std, false),
		newUserCmdOf(std, "del ADDRESS", "delete an account (its mailbox stays)", "  tern user del bob@example.test", 1, false,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.UserDel(ctx, cfg, args[0], std.out)
			}),
		newUserCmdOf(std, "disable ADDRESS", "stop an account from logging in (it still receives mail)", "  tern user disable bob@example.test", 1, false,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.UserDisable(ctx, cfg, args[0], true, std.out)
			}),
		newUserCmdOf(std, "enable ADDRESS", "let a disabled account log in again", "  tern user enable bob@example.test", 1, false,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.UserDisable(ctx, cfg, args[0], false, std.out)
			}),
		newUserCmdOf(std, "list", "list the accounts, with the mechanisms each can log in with", "  tern user list --data /var/lib/tern", 0, true,
			func(ctx context.Context, cfg config.Config, _ []string) error {
				return app.UserList(ctx, cfg, std.out)
			}),
		newUserCmdOf(std, "show ADDRESS", "show an account: its mechanisms, the missing secrets, its mailbox", "  tern user show bob@example.test", 1, true,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.UserShow(ctx, cfg, args[0], std.out)
			}),
	)
	return cmd
}

// newUserSetCmd is tern user add (add) or tern user passwd: both read a password and store the
// secrets of the configured mechanisms.
func newUserSetCmd(std stdio, add bool) *cobra.Command {
	c := common{creates: add, store: true}
	var pwStdin bool
	cmd := &cobra.Command{
		Use:   "add ADDRESS",
		Short: "add an account (password prompted, or --password-stdin)",
		Example: `  tern user add bob@example.test
  echo 'secret' | tern user add bob@example.test --password-stdin
  tern user add bob@example.test --auth-mechanisms all   (CRAM-MD5, DIGEST-MD5, NTLM too)`,
		Args: nargs(1, 1),
	}
	if !add {
		cmd.Use, cmd.Short = "passwd ADDRESS", "change an account's password (and store the secrets of the configured mechanisms)"
		cmd.Example = `  tern user passwd bob@example.test
  echo 'secret' | tern user passwd bob@example.test --password-stdin`
		cmd.Args = nargs(1, 1)
	}
	fs := cmd.Flags()
	c.register(fs)
	c.registerAccounts(fs)
	c.registerDomains(fs)
	c.registerMechs(fs)
	fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	set := app.UserPasswd
	if add {
		set = app.UserAdd
	}
	cmd.RunE = setPassword(std, &c, &pwStdin, set)
	return cmd
}

// newUserCmdOf is a user subcommand that takes n arguments, --config and --data, and with
// mechs --auth-mechanisms (the mechanisms whose missing secrets list and show point out).
func newUserCmdOf(std stdio, use, short, example string, n int, mechs bool, do func(ctx context.Context, cfg config.Config, args []string) error) *cobra.Command {
	var c common
	cmd := newStoreCmd(&c, use, short, example, nargs(n, n), do)
	if mechs {
		c.registerMechs(cmd.Flags())
	}
	return cmd
}

// newStoreCmd is a command on the account store: c loads the configuration (--data, --config,
// --accounts) and do runs with it.
func newStoreCmd(c *common, use, short, example string, args cobra.PositionalArgs, do func(ctx context.Context, cfg config.Config, args []string) error) *cobra.Command {
	c.store = true
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    args,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return do(context.Background(), cfg, args)
		},
	}
	c.register(cmd.Flags())
	c.registerAccounts(cmd.Flags())
	return cmd
}
