package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

func newAdminCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "add, delete and list the logins of the admin web interface",
		Long: `The admin web interface (--admin, admin.listen) has logins of its own, apart from the mail
accounts: a mail password does not open it, and an admin cannot send mail. They are kept in
the account store (accounts.db, or the store --accounts names), hashed with argon2id.
Only "tern admin add" makes the data directory when it is missing, and only when the store is
in it: a store elsewhere (PostgreSQL, sqlite:PATH) needs no data directory.`,
		Example: `  tern admin add alice
  echo 'secret' | tern admin add alice --password-stdin
  tern admin list
  tern admin list --accounts postgres://tern:PASSWORD@db.example.com/tern`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(
		newAdminSetCmd(std, true),
		newAdminSetCmd(std, false),
		newUserCmdOf(std, "del NAME", "delete an admin login", "  tern admin del alice", 1, false,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.AdminDel(ctx, cfg, args[0], std.out)
			}),
		newUserCmdOf(std, "list", "list the admin logins", "  tern admin list --data /var/lib/tern", 0, false,
			func(ctx context.Context, cfg config.Config, _ []string) error {
				return app.AdminList(ctx, cfg, std.out)
			}),
	)
	return cmd
}

// newAdminSetCmd is tern admin add (add) or tern admin passwd: both read a password.
func newAdminSetCmd(std stdio, add bool) *cobra.Command {
	c := common{creates: add, store: true}
	var pwStdin bool
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "add an admin login (password prompted, or --password-stdin)",
		Example: `  tern admin add alice
  echo 'secret' | tern admin add alice --password-stdin`,
		Args: nargs(1, 1),
	}
	if !add {
		cmd.Use, cmd.Short = "passwd NAME", "change an admin's password"
		cmd.Example = `  tern admin passwd alice`
	}
	fs := cmd.Flags()
	c.register(fs)
	c.registerAccounts(fs)
	fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	set := app.AdminPasswd
	if add {
		set = app.AdminAdd
	}
	cmd.RunE = setPassword(std, &c, &pwStdin, set)
	return cmd
}
