package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newLimitsCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "show the rate limit counters of the running server",
		Long: `tern counts connections, messages and recipients per client address and per account, and
messages per destination domain, against the limits of [rate] in the configuration.`,
		Example: `  tern limits show`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newLimitsShowCmd(std))
	return cmd
}

func newLimitsShowCmd(std stdio) *cobra.Command {
	var c common
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "list the counters in use, the closest to their limit first",
		Long: `Asks the running server, through DATA/admin.sock, for its rate limit counters: one line per
limit and client address (IPv6: its /64), account or destination domain that used it within
its window, with how much of the limit is used, the window, and when every event counted is
forgotten (one is forgotten every window/limit before that). Limits: connections, messages,
recipients (per client), account-messages, account-recipients, account-day-messages,
account-day-recipients (per account), outbound (per destination domain).`,
		Example: `  tern limits show
  tern limits show --json`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.LimitsCommand(context.Background(), cfg, asJSON, time.Now(), std.out)
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the counters as a JSON array")
	return cmd
}
