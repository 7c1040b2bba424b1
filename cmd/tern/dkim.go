package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newDKIMCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "make, list and rotate the DKIM keys of the local domains",
		Long: `DKIM keys live in the account store (--accounts), next to the accounts (never
world-readable). Each key prints the TXT record to publish at SELECTOR._domainkey.DOMAIN.
Remote delivery signs what it sends from a domain with active keys (rsa-sha256 and
ed25519-sha256 at once when both exist); a rotated key signs once activated.`,
		Example: `  tern dkim keygen example.com
  tern dkim keygen example.com --algorithm ed25519
  tern dkim list --records
  tern dkim rotate example.com && tern dkim rotate example.com --activate`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newDKIMKeygenCmd(std, false), newDKIMKeygenCmd(std, true), newDKIMListCmd(std))
	return cmd
}

// newDKIMKeygenCmd is tern dkim keygen, or with rotate tern dkim rotate: both make a key
// (rotate a published one, which --activate then switches to).
func newDKIMKeygenCmd(std stdio, rotate bool) *cobra.Command {
	c := common{store: true}
	var req app.DKIMRequest
	var activate bool
	cmd := &cobra.Command{
		Use:   "keygen DOMAIN",
		Short: "make an active DKIM key for DOMAIN and print its TXT record",
		Long: `Makes a key (rsa: 2048 bits, or ed25519), stores it active and prints the DNS record to
publish. A domain may have one active key of each algorithm; both sign when both are there.
The default selector is the date and the algorithm, like 20261205-rsa.`,
		Example: `  tern dkim keygen example.com
  tern dkim keygen example.com --algorithm ed25519 --selector mail2026`,
		Args: nargs(1, 1),
	}
	fs := cmd.Flags()
	c.register(fs)
	c.registerAccounts(fs)
	fs.StringVar(&req.Selector, "selector", "", "the `SELECTOR` (default <yyyymmdd>-<algorithm>)")
	fs.StringVar(&req.Algorithm, "algorithm", "", "rsa or ed25519 (default rsa)")
	if rotate {
		cmd.Use = "rotate DOMAIN"
		cmd.Short = "make a new DKIM key for DOMAIN, published before use; --activate switches to it"
		cmd.Long = `Without --activate, makes a new key for each algorithm DOMAIN signs with (or the one of
--algorithm), stored as published: publish its record and wait for its TTL. With --activate,
the published keys become active and the keys they replace retired: retired keys stay stored,
and their records should stay published a few days for mail still on its way.`
		cmd.Example = `  tern dkim rotate example.com
  tern dkim rotate example.com --activate`
		fs.Lookup("algorithm").Usage = "rsa or ed25519 (default every algorithm DOMAIN signs with)"
		fs.BoolVar(&activate, "activate", false, "switch to the published keys and retire the ones they replace")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := c.load()
		if err != nil {
			return err
		}
		req.Domain = args[0]
		if rotate {
			return app.DKIMRotate(context.Background(), cfg, req, activate, std.out)
		}
		return app.DKIMKeygen(context.Background(), cfg, req, std.out)
	}
	return cmd
}

func newDKIMListCmd(std stdio) *cobra.Command {
	c := common{store: true}
	var records bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list the DKIM keys: domain, selector, algorithm, state, creation time",
		Example: "  tern dkim list --records",
		Args:    nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.DKIMList(context.Background(), cfg, records, std.out)
		},
	}
	c.register(cmd.Flags())
	c.registerAccounts(cmd.Flags())
	cmd.Flags().BoolVar(&records, "records", false, "print each key's TXT record too")
	return cmd
}
