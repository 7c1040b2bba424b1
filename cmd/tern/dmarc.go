package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dmarc"
)

func newDMARCCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "dmarc",
		Short:   "DMARC (RFC 7489) tools",
		Long:    `DMARC tools: tern dmarc check shows the DMARC policy that governs a From domain, as tern finds it.`,
		Example: `  tern dmarc check example.com`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newDMARCCheckCmd(std))
	return cmd
}

func newDMARCCheckCmd(std stdio) *cobra.Command {
	var (
		configPath string
		r          app.DMARCCheckRequest
	)
	cmd := &cobra.Command{
		Use:   "check DOMAIN",
		Short: "show the DMARC policy that governs a From domain",
		Long: `Finds the DMARC record (RFC 7489) that governs mail whose From address is in DOMAIN, as
tern does for the mail it receives: at _dmarc.DOMAIN, else at _dmarc of its organisational
domain (by the Public Suffix List). Prints where the record is and what it publishes (p, sp,
the policy that applies to DOMAIN, pct, adkim, aspf, fo, rua), one "name: value" a line, or
the result none (no record, or several), temperror (DNS failed) or permerror and why. DNS goes
through --resolver, or the configuration's delivery.resolver, or the servers of
/etc/resolv.conf. The exit status is 0 whatever the result; 1 when the lookup could not be
made at all, 2 for a usage mistake.`,
		Example: `  tern dmarc check example.com
  tern dmarc check news.example.com --resolver 127.0.0.1:53`,
		Args: nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := dmarc.Domain(args[0]); err != nil {
				return fmt.Errorf("%w: %q is not a domain name", errUsage, args[0])
			}
			r.Domain = args[0]
			if err := resolverFlag(cmd, configPath, &r.Resolver); err != nil {
				return err
			}
			return app.DMARCCheckCommand(context.Background(), r, std.out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&r.Resolver, "resolver", "", "DNS server `HOST:PORT` (default: the configuration's delivery.resolver, or /etc/resolv.conf's)")
	fs.DurationVar(&r.Timeout, "timeout", 5*time.Second, "bound on each DNS exchange")
	fs.StringVar(&configPath, "config", "", "TOML configuration `FILE` (optional), for delivery.resolver")
	return cmd
}

// resolverFlag checks --resolver, or, when it is not given, takes the configuration's
// delivery.resolver (empty: resolv.conf's servers) into *resolver.
func resolverFlag(cmd *cobra.Command, configPath string, resolver *string) error {
	if cmd.Flags().Changed("resolver") {
		if err := config.CheckRemote(*resolver); err != nil {
			return fmt.Errorf("%w: --resolver %q: %v", errUsage, *resolver, err)
		}
		return nil
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	*resolver = cfg.Delivery.Resolver
	return nil
}
