package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newReportsCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reports",
		Short: "send and list the DMARC aggregate and SMTP TLS reports tern sends to other domains",
		Long: `tern records the DMARC results of the mail it receives and the TLS outcome of the mail it
sends, per day and domain, and sends each domain that asks (the rua= of its DMARC record, its
_smtp._tls record) a daily report after UTC midnight. See [reports] in the configuration.`,
		Example: `  tern reports list
  tern reports send --now`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newReportsSendCmd(std), newReportsListCmd(std))
	return cmd
}

func newReportsSendCmd(std stdio) *cobra.Command {
	var c common
	var now bool
	cmd := &cobra.Command{
		Use:   "send --now",
		Short: "send the reports recorded so far, today's included, now",
		Long: `Asks the running server, through DATA/admin.sock, to send every report due now, with what
is recorded for today so far (the rest of today is reported after midnight, from where this
report ends). Prints one line per destination: the queue id of the report's message, or why
it was skipped.`,
		Example: `  tern reports send --now`,
		Args:    nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !now {
				return errors.New("reports are sent daily by the server; --now sends them at once")
			}
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.ReportsSend(context.Background(), cfg, std.out)
		},
	}
	c.register(cmd.Flags())
	c.registerAccounts(cmd.Flags())
	cmd.Flags().BoolVar(&now, "now", false, "send now, today's counts so far included (required)")
	return cmd
}

func newReportsListCmd(std stdio) *cobra.Command {
	c := common{store: true}
	var days int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the report counts not sent yet and the reports sent",
		Long: `Reads the account store (the server may be stopped): the counts recorded and not reported
yet, per kind, day and domain, then the reports sent in the last --days days with their report
id, destination, size and queue id (or why a destination was skipped). The running server
adds its counts to the store every minute.`,
		Example: `  tern reports list
  tern reports list --days 1`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.ReportsList(context.Background(), cfg, days, std.out)
		},
	}
	c.register(cmd.Flags())
	c.registerAccounts(cmd.Flags())
	cmd.Flags().IntVar(&days, "days", 30, "show the reports sent in the last `N` days")
	return cmd
}
