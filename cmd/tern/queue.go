package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/queue"
)

// queueOp describes one `tern queue` subcommand.
type queueOp struct {
	name, args, short, example string
	// targets: the command acts on messages it must be told (ids, ALL or a selection).
	targets bool
}

var queueOps = []queueOp{
	{name: admin.OpList, args: "", short: "show the mail queue (like mailq); --json as postqueue -j",
		example: "  tern queue list\n  tern queue list --deferred --domain example.com\n  tern queue list --json"},
	{name: admin.OpShow, args: "ID... | ALL", short: "show messages' envelope, state and headers; --body: the whole message as queued (like postcat -bh)", targets: true,
		example: "  tern queue show 661DB5F221CA9\n  tern queue show --json --held ALL\n  tern queue show --body 661DB5F221CA9 > message.eml"},
	{name: admin.OpFlush, args: "[ID... | ALL | @domain]", short: "try queued mail again now: all of it, the messages named or selected, or a domain's (with subdomains)",
		example: "  tern queue flush\n  tern queue flush 661DB5F221CA9\n  tern queue flush --to bob@example.com\n  tern queue flush @example.com"},
	{name: admin.OpHold, args: "ID... | ALL", short: "keep messages from being delivered until released (like postsuper -h)", targets: true,
		example: "  tern queue hold 661DB5F221CA9 661DB5F23F77F\n  tern queue hold --domain example.com"},
	{name: admin.OpRelease, args: "ID... | ALL", short: "let held messages be delivered again, now (like postsuper -H)", targets: true,
		example: "  tern queue release ALL\n  tern queue release --from alice@example.org"},
	{name: admin.OpDelete, args: "ID... | ALL", short: "delete messages without a report to their senders (like postsuper -d)", targets: true,
		example: "  tern queue delete 661DB5F221CA9\n  tern queue delete --to bob@example.com ALL\n  tern queue delete --from '<>' --deferred"},
	{name: admin.OpBounce, args: "ID... | ALL", short: "return messages to their senders with a failure report", targets: true,
		example: "  tern queue bounce 661DB5F221CA9\n  tern queue bounce --domain gone.example"},
}

func newQueueCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "list, show, flush, hold, release, delete and bounce queued mail (like mailq and postsuper)",
		Long: "Every command but list and flush names its messages: queue ids, ALL, or a selection\n" +
			"(--from, --to, --domain, --held, --deferred; all given must match). With ids, a selection\n" +
			"narrows them. A command on several messages goes on past those that fail, names each,\n" +
			"and exits 1.",
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	for _, op := range queueOps {
		cmd.AddCommand(newQueueOpCmd(std, op))
	}
	return cmd
}

func newQueueOpCmd(std stdio, op queueOp) *cobra.Command {
	var (
		c              common
		hostname       string
		sel            queue.Selection
		asJSON, asBody bool
	)
	cmd := &cobra.Command{
		Use:     strings.TrimSpace(op.name + " " + op.args),
		Short:   op.short,
		Example: op.example,
		Args:    cobra.ArbitraryArgs,
	}
	fs := cmd.Flags()
	c.register(fs) // --domain here is the recipients' (registerSelection), not a local domain
	registerSelection(fs, &sel)
	switch op.name {
	case admin.OpList:
		fs.BoolVar(&asJSON, "json", false, "one JSON object a line, as postqueue -j (fields in docs/queue.md)")
	case admin.OpShow:
		fs.BoolVar(&asJSON, "json", false, "one JSON object a line, as postqueue -j with more fields (docs/queue.md)")
		fs.BoolVar(&asBody, "body", false, "print the whole message of one ID as queued, headers and body, octet for octet")
	case admin.OpBounce:
		fs.StringVar(&hostname, "hostname", "", "the server's host name, for the report tern queue bounce writes while the server is stopped\n(default: the config's, or the machine's; give what tern serve was given)")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		r, err := queueRequest(op, args, sel, asJSON, asBody)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
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
		err = app.QueueCommand(context.Background(), cfg, r, std.out, app.NewLogger(logConf, std.err))
		return perMessage(std, err)
	}
	return cmd
}

// registerSelection adds the flags that select messages (queue.Selection).
func registerSelection(fs *pflag.FlagSet, sel *queue.Selection) {
	fs.StringVar(&sel.From, "from", "", "only messages from this sender: an address, @domain, or '<>' for bounces")
	fs.StringVar(&sel.To, "to", "", "only messages with this pending recipient: an address or @domain")
	fs.StringVar(&sel.Domain, "domain", "", "only messages with a pending recipient in this domain (not its subdomains)")
	fs.BoolVar(&sel.Held, "held", false, "only held messages")
	fs.BoolVar(&sel.Deferred, "deferred", false, "only messages waiting for a retry (not held, not due now)")
}

// queueRequest reads the arguments of op: queue ids, ALL, or (flush) @domain.
func queueRequest(op queueOp, args []string, sel queue.Selection, asJSON, asBody bool) (app.QueueRequest, error) {
	r := app.QueueRequest{Op: op.name, Select: sel, JSON: asJSON}
	if err := sel.Check(); err != nil {
		return r, errors.New(strings.TrimPrefix(err.Error(), queue.ErrSelection.Error()+"\n"))
	}
	for _, a := range args {
		switch {
		case strings.EqualFold(a, "ALL"):
			r.All = true
		case strings.HasPrefix(a, "@") && op.name == admin.OpFlush:
			if len(args) != 1 || !sel.IsZero() {
				return r, errors.New("flush @domain takes no other argument nor selection")
			}
			r.Arg = a
		default:
			r.IDs = append(r.IDs, strings.ToUpper(a)) // ids are upper case; typed in any
		}
	}
	switch {
	case op.name == admin.OpList && len(args) > 0:
		return r, errors.New("list takes no arguments: select with --from, --to, --domain, --held, --deferred")
	case r.All && len(r.IDs) > 0:
		return r, errors.New("give queue ids or ALL, not both")
	case op.targets && len(r.IDs) == 0 && !r.All && sel.IsZero():
		return r, errors.New("name the messages: queue ids, ALL, or a selection")
	case asBody && (len(r.IDs) != 1 || r.All || !sel.IsZero() || asJSON):
		return r, errors.New("--body prints one message: give its id alone")
	case asBody:
		r.Op, r.Arg, r.IDs = admin.OpBody, r.IDs[0], nil
	}
	return r, nil
}

// perMessage reports the errors of a command on several messages one line each (run prints a
// single error itself), and exits 1.
func perMessage(std stdio, err error) error {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) < 2 {
		return err
	}
	for _, e := range joined.Unwrap() {
		_, _ = fmt.Fprintf(std.err, "tern: %v\n", e) // exit status 1 says it all the same
	}
	return exitCode(1)
}
