// Command tern is a mail server and SMTP toolkit in one binary.
//
//	tern serve                 run the server (defaults: loopback ports, ./tern-data)
//	tern user add|del|passwd|list
//	tern queue list            what is waiting in the queue (like mailq)
//	tern status                the running server's sessions, queue, goroutines, files, memory
//	tern config example        the annotated configuration file with every default
//
// This file only parses flags, loads the configuration and calls package app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: tern <command> [flags]

commands:
  serve                       run the SMTP server
  user add ADDR               add an account (password prompted, or --password-stdin)
  user del ADDR               delete an account
  user passwd ADDR            change an account's password
  user list                   list accounts
  queue list                  show the mail queue (like mailq)
  queue show|hold|release|delete|bounce ID, queue flush [ID|@domain]
  status                      the running server's sessions, queue length, goroutines, open
                              files and memory (--json for scripts)
  auth MECH ...               make AUTH strings by hand, like gen-auth (tern auth -h)
  auth encode|decode STRING   base64 in and out, decode explains what it finds
  send --server H:P ...       one SMTP transaction with a readable transcript, like swaks
  config example              print an annotated config file with all defaults
  version                     print the version

Run "tern <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

// exitCode is returned by a command that has already reported its outcome and only wants its
// exit status (tern send: 4 for a temporary failure, 5 for a permanent one, ...).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "user":
		err = cmdUser(args[1:], stdin, stdout, stderr)
	case "queue":
		err = cmdQueue(args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "auth":
		err = cmdAuth(args[1:], stdin, stdout, stderr)
	case "send":
		err = cmdSend(args[1:], stdin, stdout, stderr)
	case "config":
		if len(args) == 2 && args[1] == "example" {
			fmt.Fprint(stdout, config.Example())
			return 0
		}
		err = fmt.Errorf("%w: tern config example", errUsage)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tern", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code) // the command has said what happened
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tern: %v\n", err)
		if !strings.Contains(err.Error(), "\n") {
			fmt.Fprint(stderr, usage)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "tern: %v\n", err)
		return 1
	}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// common holds the flags every command that touches the data directory takes.
type common struct {
	configPath string
	data       string
	domains    stringList
	mechs      stringList
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", "", "TOML configuration file (optional)")
	fs.StringVar(&c.data, "data", "", "data directory (default ./tern-data, or $TERN_DATA)")
	fs.Var(&c.domains, "domain", "a local domain (repeatable; default localhost)")
	fs.Var(&c.mechs, "auth-mechanisms", "SASL mechanisms offered (serve) or whose secrets are stored (user add/passwd):\n"+
		"comma-separated, or \"all\" for the legacy ones too (default PLAIN,LOGIN,SCRAM-SHA-256(-PLUS),SCRAM-SHA-1(-PLUS))")
}

// load returns the configuration: defaults, then the file, then $TERN_DATA, then flags.
func (c *common) load() (config.Config, error) {
	cfg, err := config.Load(c.configPath)
	if err != nil {
		return cfg, err
	}
	if d := os.Getenv("TERN_DATA"); d != "" {
		cfg.Data = d
	}
	if c.data != "" {
		cfg.Data = c.data
	}
	if len(c.domains) > 0 {
		cfg.Domains = c.domains
	}
	if len(c.mechs) > 0 {
		m, err := config.ParseMechanisms(c.mechs)
		if err != nil {
			return cfg, fmt.Errorf("%w: --auth-mechanisms: %v", errUsage, err)
		}
		cfg.Auth.Mechanisms = m
	}
	return cfg, nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tern serve", stderr)
	var c common
	c.register(fs)
	smtpAddr := fs.String("smtp", "", "MX listener address (default 127.0.0.1:2525; empty disables)")
	subAddr := fs.String("submission", "", "submission (STARTTLS) listener (default 127.0.0.1:2587; empty disables)")
	subsAddr := fs.String("submissions", "", "submissions (implicit TLS) listener (default 127.0.0.1:2465; empty disables)")
	hostname := fs.String("hostname", "", "host name for the greeting and Received headers (default: the machine's)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	resolver := fs.String("resolver", "", "DNS server HOST:PORT for MX lookups instead of the system's")
	remotePort := fs.Int("remote-port", 0, "port of the MX hosts mail is delivered to (default 25)")
	relayhost := fs.String("relayhost", "", "smarthost HOST:PORT that takes all remote mail instead of MX lookup")
	retrySchedule := fs.String("retry-schedule", "", "fixed waits between delivery attempts, e.g. 1s,2s,4s (default: 1m doubling to 1h)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	// Flags given explicitly win, even when empty (an empty address disables a listener).
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "smtp":
			cfg.Listen.SMTP = *smtpAddr
		case "submission":
			cfg.Listen.Submission = *subAddr
		case "submissions":
			cfg.Listen.Submissions = *subsAddr
		case "hostname":
			cfg.Hostname = *hostname
		case "log-level":
			cfg.Log.Level = *logLevel
		case "resolver":
			cfg.Delivery.Resolver = *resolver
		case "remote-port":
			cfg.Delivery.RemotePort = *remotePort
		case "relayhost":
			cfg.Delivery.Relayhost = *relayhost
		}
	})
	if *retrySchedule != "" {
		cfg.Queue.RetrySchedule = nil
		for _, f := range strings.Split(*retrySchedule, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: --retry-schedule %q: want durations like 1s,2s,4s", errUsage, *retrySchedule)
			}
			cfg.Queue.RetrySchedule = append(cfg.Queue.RetrySchedule, config.Duration{Duration: d})
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return app.Serve(ctx, cfg, stdout, app.NewLogger(cfg.Log, stderr))
}

func cmdUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: tern user add|del|passwd|list", errUsage)
	}
	sub := args[0]
	fs := newFlagSet("tern user "+sub, stderr)
	var c common
	c.register(fs)
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	needAddr := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("%w: tern user %s ADDRESS", errUsage, sub)
		}
		return fs.Arg(0), nil
	}
	switch sub {
	case "add", "passwd":
		addr, err := needAddr()
		if err != nil {
			return err
		}
		pw, err := readPassword(stdin, stderr, *pwStdin)
		if err != nil {
			return err
		}
		if sub == "add" {
			return app.UserAdd(ctx, cfg, addr, pw, stdout)
		}
		return app.UserPasswd(ctx, cfg, addr, pw, stdout)
	case "del":
		addr, err := needAddr()
		if err != nil {
			return err
		}
		return app.UserDel(ctx, cfg, addr, stdout)
	case "list":
		if fs.NArg() != 0 {
			return fmt.Errorf("%w: tern user list", errUsage)
		}
		return app.UserList(ctx, cfg, stdout)
	}
	return fmt.Errorf("%w: unknown user command %q", errUsage, sub)
}

// readPassword reads the password to set: from the first line of stdin with --password-stdin,
// or from the terminal without echo (asked twice).
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	pw, err := secretin.New(stdin, stderr).Secret(secretin.Ask{What: "Password", Stdin: fromStdin, TerminalOnly: true, Confirm: true})
	switch {
	case errors.Is(err, secretin.ErrNoLine):
		return "", errors.New("no password on standard input (--password-stdin reads its first line)")
	case errors.Is(err, secretin.ErrNotTerminal):
		return "", fmt.Errorf("%w: standard input is not a terminal; use --password-stdin", errUsage)
	case errors.Is(err, secretin.ErrMismatch):
		return "", errors.New("the passwords do not match")
	}
	return pw, err
}

func cmdQueue(args []string, stdout, stderr io.Writer) error {
	const usage = "tern queue list | show ID | flush [ID|@domain] | hold ID | release ID | delete ID | bounce ID"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	op := args[0]
	fs := newFlagSet("tern queue "+op, stderr)
	var c common
	c.register(fs)
	hostname := fs.String("hostname", "", "the server's host name, for the report tern queue bounce writes while the server is stopped\n(default: the config's, or the machine's; give what tern serve was given)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var arg string
	switch op {
	case "list":
		if fs.NArg() != 0 {
			return fmt.Errorf("%w: %s", errUsage, usage)
		}
	case "flush":
		if fs.NArg() > 1 {
			return fmt.Errorf("%w: %s", errUsage, usage)
		}
		arg = fs.Arg(0)
	case "show", "hold", "release", "delete", "bounce":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: tern queue %s ID", errUsage, op)
		}
		arg = strings.ToUpper(fs.Arg(0))
	default:
		return fmt.Errorf("%w: unknown queue command %q; %s", errUsage, op, usage)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if *hostname != "" {
		cfg.Hostname = *hostname
	}
	// With the server stopped the command opens the queue itself, and the queue logs what it
	// recovers at info level: right for the server's log, noise before a command's answer.
	// Warnings (a damaged log record) still show; debug shows everything.
	logConf := cfg.Log
	if logConf.Level == "info" {
		logConf.Level = "warn"
	}
	return app.QueueCommand(context.Background(), cfg, op, arg, stdout, app.NewLogger(logConf, stderr))
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tern status", stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: tern status [--json]", errUsage)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return app.StatusCommand(context.Background(), cfg, *asJSON, stdout)
}
