package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

// maxAliasArgs bounds the targets of one command line (nargs wants a maximum).
const maxAliasArgs = 10000

func newAliasCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "add, delete and list aliases, catch-alls and domain aliases",
		Long: `Aliases live in the account store (--accounts), next to the accounts; a running server
sees changes at once. An alias is an address (kenneth@example.test) or a domain (@example.org);
its targets are local accounts, other aliases (expanded in turn, at most addresses.alias_depth
deep, loops dropped) or external addresses (forwarded). A domain with address targets is a
catch-all: it takes the domain's mail that no account or alias takes. A domain with one domain
target is a domain alias: local@example.org goes to local@example.test.`,
		Example: `  tern alias add kenneth@example.test kenneth.burgener@example.test
  tern alias add team@example.test alice@example.test bob@example.test
  tern alias add bob@example.test bob@example.test bob@elsewhere.example   (keep a copy, forward one)
  tern alias add @example.test postmaster@example.test   (catch-all)
  tern alias add @example.org @example.test   (domain alias)`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(
		newAliasCmdOf("add ADDRESS TARGET...", "add targets to an alias (making it if needed)",
			"  tern alias add kenneth@example.test kenneth.burgener@example.test", 2, maxAliasArgs,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.AliasAdd(ctx, cfg, args[0], args[1:], std.out)
			}),
		newAliasCmdOf("del ADDRESS [TARGET...]", "delete an alias, or some of its targets",
			"  tern alias del team@example.test bob@example.test\n  tern alias del team@example.test", 1, maxAliasArgs,
			func(ctx context.Context, cfg config.Config, args []string) error {
				return app.AliasDel(ctx, cfg, args[0], args[1:], std.out)
			}),
		newAliasCmdOf("list [DOMAIN]", "list the aliases (of one domain)",
			"  tern alias list\n  tern alias list example.test", 0, 1,
			func(ctx context.Context, cfg config.Config, args []string) error {
				domain := ""
				if len(args) > 0 {
					domain = args[0]
				}
				return app.AliasList(ctx, cfg, domain, std.out)
			}),
	)
	return cmd
}

func newAliasCmdOf(use, short, example string, minArgs, maxArgs int, do func(ctx context.Context, cfg config.Config, args []string) error) *cobra.Command {
	// Only add makes the data directory, as tern user add does.
	c := &common{creates: strings.HasPrefix(use, "add ")}
	cmd := newStoreCmd(c, use, short, example, nargs(minArgs, maxArgs), do)
	c.registerDomains(cmd.Flags())
	return cmd
}
