package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/tools/secretin"
	"github.com/tern-mail/tern/internal/tools/send"
)

const sendUsage = `usage: tern send --server HOST:PORT --from A --to B [--to C...] [flags]

One SMTP transaction, shown line by line like swaks: "<-" from the server, "->" from the
client, "<~" and "~>" once TLS is on, "***" for notes and errors, and "##" under each AUTH line
with what its base64 says (the password masked unless --show-secrets).

Without --data, tern send builds the message: Date, To, From, Subject, Message-Id, the
--header fields and the --body (MIME headers when the body is not ASCII).

--auth without a mechanism picks the best the server offers (SCRAM-SHA-256-PLUS first; PLAIN
and LOGIN only over TLS). The password is read from the terminal without echo, or from the
first line of standard input with --password-stdin or when standard input is not a terminal
(--data - then reads the message from the rest). --password PW gives it on the command line, for
scripts that cannot use standard input, as swaks' --auth-password: other local users can read
it (ps, /proc/PID/cmdline). --auth GSSAPI takes no password: it uses the
Kerberos ticket kinit left in the credential cache ($KRB5CCNAME, $KRB5_CONFIG), or --keytab and
--principal, for the service principal smtp/<the --server host> (--spn to name another).

The server's certificate is verified: --ca FILE trusts a self-signed one (tern serve's is
DATA/tls/cert.pem), --insecure skips the check.

exit status (of the first failure, when there are several):
  0  delivered to every recipient (or every step up to --quit-after went through)
  2  usage: bad flags, an unreadable --data or --ca file; nothing was sent
  3  connection, TLS or protocol failure, before any reply said otherwise
  4  temporary failure: the server answered 4xx (try again later)
  5  permanent failure: the server answered 5xx (a refused recipient counts,
     even when the others got the message)

flags:
`

// newSendCmd is tern send: see internal/tools/send. It parses its flags itself, to let --auth go
// without a value (authDefault).
func newSendCmd(std stdio) *cobra.Command {
	var o send.Options
	var to, headers []string
	var pwStdin bool
	var password string
	cmd := &cobra.Command{
		Use:                "send --server HOST:PORT --from A --to B [--to C...]",
		Short:              "one SMTP transaction with a readable transcript, like swaks",
		Long:               strings.TrimSuffix(strings.SplitN(sendUsage, "\n\n", 2)[1], "\nflags:\n"),
		DisableFlagParsing: true,
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Server, "server", "", "the server, HOST:PORT")
	fs.StringVar(&o.From, "from", "", "the sender (MAIL FROM and From:); \"<>\" for the null sender")
	fs.StringArrayVar(&to, "to", nil, "a recipient (repeatable, or comma-separated)")
	fs.StringVar(&o.Auth, "auth", "", "AUTH with this mechanism; without one, the best the server offers")
	fs.StringVar(&o.User, "user", "", "the login for AUTH (default: --from); implies --auth")
	fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&password, "password", "", "the AUTH password or token, for scripts that cannot use standard input:\n"+
		"other local users can read it (ps, /proc/PID/cmdline); prefer --password-stdin")
	fs.BoolVar(&o.AllowCleartext, "allow-cleartext", false, "let PLAIN and LOGIN send the password without TLS")
	fs.StringVar(&o.Keytab, "keytab", "", "GSSAPI: log in with this keytab `file` (with --principal) instead of the credential cache ($KRB5CCNAME)")
	fs.StringVar(&o.Principal, "principal", "", "GSSAPI: the client `principal` in --keytab, name or name@REALM")
	fs.StringVar(&o.SPN, "spn", "", "GSSAPI: the server's principal, `service/host` (default smtp/<the --server host>)")
	fs.BoolVar(&o.StartTLS, "starttls", false, "STARTTLS after EHLO (submission, port 587)")
	fs.BoolVar(&o.TLS, "tls", false, "TLS from the start (submissions, port 465)")
	fs.BoolVar(&o.Insecure, "insecure", false, "do not verify the server's certificate")
	fs.StringVar(&o.CAFile, "ca", "", "trust only the certificates in this PEM `file`")
	fs.StringVar(&o.EHLO, "ehlo", "", "the EHLO `name` (default: this host's name)")
	fs.StringVar(&o.DataFile, "data", "", "send this message `file` (- for standard input); line ends become CRLF")
	fs.StringArrayVar(&headers, "header", nil, "a header field, 'Name: value', replacing one of that name (repeatable)")
	fs.StringVar(&o.Body, "body", "", "the body of the message tern send builds")
	fs.BoolVar(&o.Pipeline, "pipeline", false, "send MAIL, RCPT and DATA together when the server offers PIPELINING")
	fs.StringVar(&o.QuitAfter, "quit-after", "", "QUIT after this `stage`: connect, ehlo, tls, auth, mail or rcpt")
	fs.BoolVar(&o.ShowSecrets, "show-secrets", false, "show the password in the transcript")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "for connecting and for each command")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := fs.Parse(authDefault(args)); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if help, _ := fs.GetBool("help"); help {
			return cmd.Help()
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
		}
		for _, t := range to {
			for _, a := range strings.Split(t, ",") {
				if a = strings.TrimSpace(a); a != "" {
					o.To = append(o.To, a)
				}
			}
		}
		o.Headers = headers
		if o.User != "" && o.Auth == "" {
			o.Auth = send.AuthAuto
		}
		in := secretin.New(std.in, std.err)
		o.Stdin, o.Stdout = in.Reader(), std.out
		if o.Auth != "" && send.NeedsPassword(o.Auth) {
			pw, err := sendPassword(in, password, fs.Changed("password"), pwStdin)
			if err != nil {
				return err
			}
			o.Password = pw
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		code, err := send.Run(ctx, o)
		switch {
		case errors.Is(err, send.ErrUsage):
			detail := strings.TrimPrefix(err.Error(), send.ErrUsage.Error()+": ")
			return fmt.Errorf("%w: %s", errUsage, detail)
		case err != nil:
			return err
		case code != 0:
			return exitCode(code)
		}
		return nil
	}
	return cmd
}

// authDefault lets --auth go without a value, as in swaks: "--auth" followed by nothing or by
// another flag means the best mechanism the server offers.
func authDefault(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--auth" || a == "-auth") && (i+1 == len(args) || strings.HasPrefix(args[i+1], "-")) {
			a = "--auth=" + send.AuthAuto
		}
		out = append(out, a)
	}
	return out
}

// sendPassword is --password, or reads the password: the first line of standard input with
// --password-stdin or when it is not a terminal, the terminal without echo otherwise.
func sendPassword(in *secretin.Input, password string, given, fromStdin bool) (string, error) {
	if given {
		if fromStdin {
			return "", fmt.Errorf("%w: --password and --password-stdin: give one or the other", errUsage)
		}
		return password, nil
	}
	pw, err := in.Secret(secretin.Ask{What: "Password", Stdin: fromStdin})
	switch {
	case errors.Is(err, secretin.ErrNoLine):
		return "", fmt.Errorf("%w: no password on standard input (its first line, or --password)", errUsage)
	case err != nil:
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return pw, nil
}
