package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newAccountsCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "copy the account store into another (SQLite to PostgreSQL, for several nodes)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(newAccountsCopyCmd(std))
	return cmd
}

func newAccountsCopyCmd(std stdio) *cobra.Command {
	c := common{store: true}
	var to string
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "copy --to URL",
		Short: "copy the accounts, their AUTH secrets, aliases, DKIM keys and report counts into another store",
		Long: `Copies everything the account store holds into the store --to names, in one transaction
there: the accounts with their password hashes and the secrets of their mechanisms as stored (no
password is hashed again or seen, so every password and mechanism keeps working), the aliases,
the DKIM keys with their states (the nodes sign with the same keys, no DNS change), the report
counts and the reports sent. A target that holds anything is refused unless --overwrite, which
replaces what has the same name there and leaves the rest. Stop the servers on the old store
first: what they change during the copy may be missed. Then point every node at the new store
(accounts.url, or --accounts).`,
		Example: `  tern accounts copy --data /var/lib/tern --to postgres://tern:PASSWORD@db.example.com/tern
  tern accounts copy --from sqlite:/var/lib/tern/accounts.db --to postgres://tern@db.example.com/tern`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("%w: --to URL is required (sqlite:PATH or postgres://...)", errUsage)
			}
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.AccountsCopy(context.Background(), cfg, to, overwrite, std.out)
		},
	}
	fs := cmd.Flags()
	c.register(fs)
	fs.StringVar(&c.accounts, "from", "", "the store to copy, `URL`: sqlite:PATH or postgres://...\n(default accounts.url, or $TERN_ACCOUNTS, or SQLite in the data directory)")
	fs.StringVar(&to, "to", "", "the store to copy into, `URL`: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB")
	fs.BoolVar(&overwrite, "overwrite", false, "copy into a store that is not empty, replacing what has the same name")
	return cmd
}
