package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

const queueUsage = "tern queue list | show ID | flush [ID|@domain] | hold ID | release ID | delete ID | bounce ID"

func newQueueCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "list, show, flush, hold, release, delete and bounce queued mail (like mailq and postsuper)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	ops := []struct {
		use, short string
		min, max   int
		synopsis   string
	}{
		{"list", "show the mail queue (like mailq)", 0, 0, queueUsage},
		{"show ID", "show a queued message's envelope, state and headers", 1, 1, "tern queue show ID"},
		{"flush [ID|@domain]", "try queued mail again now: all, one message, or a domain's", 0, 1, queueUsage},
		{"hold ID", "keep a message from being delivered until released", 1, 1, "tern queue hold ID"},
		{"release ID", "let a held message be delivered again", 1, 1, "tern queue release ID"},
		{"delete ID", "delete a message without a report to its sender", 1, 1, "tern queue delete ID"},
		{"bounce ID", "return a message to its sender with a failure report", 1, 1, "tern queue bounce ID"},
	}
	for _, op := range ops {
		cmd.AddCommand(newQueueOpCmd(std, op.use, op.short, op.min, op.max, op.synopsis))
	}
	return cmd
}

func newQueueOpCmd(std stdio, use, short string, min, max int, synopsis string) *cobra.Command {
	var c common
	var hostname string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  argsUsage(min, max, synopsis),
	}
	c.register(cmd.Flags())
	cmd.Flags().StringVar(&hostname, "hostname", "", "the server's host name, for the report tern queue bounce writes while the server is stopped\n(default: the config's, or the machine's; give what tern serve was given)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		op := cmd.Name()
		var arg string
		if len(args) == 1 {
			arg = args[0]
			if op != "flush" {
				arg = strings.ToUpper(arg)
			}
		}
		cfg, err := c.load()
		if err != nil {
			return err
		}
		if hostname != "" {
			cfg.Hostname = hostname
		}
		// With the server stopped the command opens the queue itself, and the queue logs what it
		// recovers at info level: right for the server's log, noise before a command's answer.
		// Warnings (a damaged log record) still show; debug shows everything.
		logConf := cfg.Log
		if logConf.Level == "info" {
			logConf.Level = "warn"
		}
		return app.QueueCommand(context.Background(), cfg, op, arg, std.out, app.NewLogger(logConf, std.err))
	}
	return cmd
}
