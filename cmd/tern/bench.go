package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tern-mail/tern/internal/tools/bench"
	"github.com/tern-mail/tern/internal/tools/benchplot"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

const benchLong = `A load generator: --sessions parallel SMTP sessions send --messages messages in all, or go
on for --duration (the first bound reached ends the run; without either, 100 messages). Each
message is --size octets, header included, to --recipients recipients (the --to addresses in
turn, then local+2@domain, local+3@domain...), with a Message-ID of its own.

By default every message has its own connection and each command waits for its reply, as
Postfix's smtp-source does; --reuse keeps a connection for the next message, --pipeline sends
MAIL, RCPT and DATA together when the server offers PIPELINING.

On a terminal a line shows the messages sent, the rate and the errors as the run goes (none
when standard output is not a terminal). The summary gives messages/s, MB/s (10^6 octets of
message text), the latency of each message (MAIL to the reply after the data) and of each
command (p50, p90, p99, max; "data-end" is the message text and the reply to its end), the
connections made and the failures by command and reply code. --json prints it as JSON instead;
--plot FILE.html or FILE.png draws the throughput over time and the latency distribution (the
HTML page is self-contained: inline SVG, nothing fetched).

The server's certificate is verified: --ca FILE trusts a self-signed one (tern serve's is
DATA/tls/cert.pem), --insecure skips the check. --auth MECH logs in on every connection (PLAIN,
LOGIN, CRAM-MD5, SCRAM-SHA-256 and the others that take a password; not GSSAPI); the password is
read from the terminal without echo, or from the first line of standard input with
--password-stdin (or when it is not a terminal); --password PW gives it on the command line,
where other local users can read it.

Send only to servers you run or may load: every message is delivered.

exit status:
  0  every message was accepted
  1  some were not (the summary says why)
  2  usage: bad flags; nothing was sent`

// newBenchCmd is tern bench: see internal/tools/bench.
func newBenchCmd(std stdio) *cobra.Command {
	var o bench.Options
	var to, plots []string
	var pwStdin, asJSON bool
	var password string
	cmd := &cobra.Command{
		Use:   "bench --server HOST:PORT [--sessions N] [--messages M | --duration D] [--size BYTES]",
		Short: "an SMTP load generator: messages/s, MB/s, latencies and errors",
		Long:  benchLong,
		Example: `  tern bench --server 127.0.0.1:25 --sessions 20 --messages 2000 --size 5120 --to b@example.test
  tern bench --server mx.example.test:587 --starttls --auth PLAIN --user a@example.test --password-stdin \
      --from a@example.test --to b@example.test --duration 1m --reuse --pipeline --plot run.html`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Server, "server", "", "the server, HOST:PORT")
	fs.IntVar(&o.Sessions, "sessions", bench.DefaultSessions, "parallel SMTP sessions")
	fs.IntVar(&o.Messages, "messages", 0, "messages to send in all (default 100 without --duration)")
	fs.DurationVar(&o.Duration, "duration", 0, "go on sending for this long (1m, 30s)")
	fs.IntVar(&o.Size, "size", bench.DefaultSize, "each message's size in `octets`, header included")
	fs.IntVar(&o.Recipients, "recipients", 1, "recipients per message")
	fs.BoolVar(&o.Pipeline, "pipeline", false, "send MAIL, RCPT and DATA together when the server offers PIPELINING")
	fs.BoolVar(&o.Reuse, "reuse", false, "send the next message over the same connection")
	fs.BoolVar(&o.StartTLS, "starttls", false, "STARTTLS after EHLO")
	fs.BoolVar(&o.TLS, "tls", false, "TLS from the start (port 465)")
	fs.BoolVar(&o.Insecure, "insecure", false, "do not verify the server's certificate")
	fs.StringVar(&o.CAFile, "ca", "", "trust only the certificates in this PEM `file`")
	fs.StringVar(&o.Auth, "auth", "", "log in with this SASL `mechanism` on every connection (needs --user)")
	fs.StringVar(&o.User, "user", "", "the login for --auth")
	fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&password, "password", "", "the AUTH password, for scripts that cannot use standard input:\n"+
		"other local users can read it (ps, /proc/PID/cmdline); prefer --password-stdin")
	fs.StringVar(&o.From, "from", "", "the sender (default: bench@ the --server host)")
	fs.StringArrayVar(&to, "to", nil, "a recipient (repeatable, or comma-separated; default: bench-sink@ the --server host)")
	fs.StringVar(&o.EHLO, "ehlo", "", "the EHLO `name` (default bench.invalid)")
	fs.DurationVar(&o.Timeout, "timeout", bench.DefaultTimeout, "for connecting and for each command")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.StringArrayVar(&plots, "plot", nil, "draw the run into `FILE`.html (inline SVG) or FILE.png (repeatable)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		for _, t := range to {
			for _, a := range strings.Split(t, ",") {
				if a = strings.TrimSpace(a); a != "" {
					o.To = append(o.To, a)
				}
			}
		}
		for _, p := range plots {
			if benchplot.CheckName(p) != nil {
				return fmt.Errorf("%w: --plot %s: the file name must end in .html or .png", errUsage, p)
			}
		}
		if o.Auth == "" && (o.User != "" || pwStdin || fs.Changed("password")) {
			return fmt.Errorf("%w: --user and the password go with --auth MECH", errUsage)
		}
		if err := o.Check(); err != nil {
			return benchUsage(err)
		}
		if o.Auth != "" {
			pw, err := sendPassword(secretin.New(std.in, std.err), password, fs.Changed("password"), pwStdin)
			if err != nil {
				return err
			}
			o.Password = pw
		}
		if f, ok := std.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			o.Progress = std.out
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		res, err := bench.Run(ctx, o)
		if err != nil {
			return benchUsage(err)
		}
		if asJSON {
			enc := json.NewEncoder(std.out)
			enc.SetIndent("", "  ")
			err = enc.Encode(res)
		} else {
			err = res.WriteText(std.out)
		}
		if err != nil {
			return err
		}
		for _, p := range plots {
			if err := benchplot.WriteFile(p, res, time.Now()); err != nil {
				return fmt.Errorf("--plot: %w", err)
			}
		}
		if res.Failed > 0 || res.Messages == 0 {
			return exitCode(1)
		}
		return nil
	}
	return cmd
}

// benchUsage turns bench's usage errors into the command's (exit status 2).
func benchUsage(err error) error {
	if errors.Is(err, bench.ErrUsage) {
		return fmt.Errorf("%w: %s", errUsage, strings.TrimPrefix(err.Error(), bench.ErrUsage.Error()+": "))
	}
	return err
}
