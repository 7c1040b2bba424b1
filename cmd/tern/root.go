// Command tern is a mail server and SMTP toolkit in one binary.
//
//	tern serve                 run the server (defaults: loopback ports, ./tern-data)
//	tern user add|del|passwd|list
//	tern accounts copy         copy the account store (SQLite to PostgreSQL)
//	tern queue list            what is waiting in the queue (like mailq)
//	tern status                the running server's sessions, queue, goroutines, files, memory
//	tern config example        the annotated configuration file with every default
//
// This package only parses flags (with cobra and pflag), loads the configuration and calls
// package app or a tool package. Each command is built by its own file's newXCmd; this file
// holds what they share: the exit statuses, the flags of the data directory and the
// configuration, and standard input and output.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

// version and commit are set at build time by make, with -ldflags "-X main.version=... -X
// main.commit=..."; see versionText for what go build and go install record.
var version, commit = "dev", ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

// exitCode is returned by a command that has already reported its outcome and only wants its
// exit status (tern send: 4 for a temporary failure, 5 for a permanent one, ...).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// stdio is what a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run executes the command line args and returns the exit status: 0 done, 1 failed, 2 a
// usage error, or what the command asked for with an exitCode.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdio{stdin, stdout, stderr})
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code) // the command has said what happened
	// The last words: a failed write to stderr has nowhere left to be told.
	case errors.Is(err, errUsage):
		_, _ = fmt.Fprintln(stderr, usageLine(cmd, err))
		return 2
	default:
		_, _ = fmt.Fprintf(stderr, "tern: %v\n", err)
		return 1
	}
}

// usageLine words a usage error of cmd: what was wrong, and where the usage is, in one line
// ("tern user: unknown flag: --x; see 'tern user --help'"). A message of several lines carries
// its own hints and is left as it is.
func usageLine(cmd *cobra.Command, err error) string {
	msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
	path := "tern"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	if !strings.HasPrefix(msg, "tern ") && !strings.HasPrefix(msg, "tern: ") {
		msg = path + ": " + msg
	}
	if strings.Contains(msg, "\n") {
		return msg
	}
	return fmt.Sprintf("%s; see '%s --help'", msg, path)
}

// newRootCmd is the command tree.
func newRootCmd(std stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "tern",
		Short: "a mail server and SMTP toolkit",
		Long: `tern is a mail server and SMTP toolkit in one binary: tern serve runs the server, tern user and
tern queue manage its accounts and queue, tern send and tern auth test any SMTP server.`,
		Example: `  tern serve --domain example.test
  tern user add bob@example.test
  tern help user add`,
		// Errors are reported once, by run, and usage only on request.
		SilenceErrors: true,
		SilenceUsage:  true,
		// No "Auto generated ... on DATE" line: the man pages are compared with docs/man.
		DisableAutoGenTag: true,
		Args:              cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
			}
			_, _ = fmt.Fprint(std.err, cmd.UsageString()) // exit status 2 says it all the same
			return exitCode(2)
		},
	}
	// tern --version, as tern version.
	root.Version = version
	root.SetVersionTemplate(versionText())
	root.SetIn(std.in)
	root.SetOut(std.out)
	root.SetErr(std.err)
	root.SetHelpCommand(newHelpCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	root.AddCommand(
		newServeCmd(std),
		newUserCmd(std),
		newAdminCmd(std),
		newAliasCmd(std),
		newDKIMCmd(std),
		newAccountsCmd(std),
		newDNSCmd(std),
		newQueueCmd(std),
		newStatusCmd(std),
		newReloadCmd(std),
		newLimitsCmd(std),
		newReportsCmd(std),
		newAuthCmd(std),
		newSendCmd(std),
		newBenchCmd(std),
		newSPFCmd(std),
		newDMARCCmd(std),
		newConfigCmd(std),
		newBackupCmd(std),
		newRestoreCmd(std),
		newVersionCmd(std),
		newManCmd(),
	)
	return root
}

// newHelpCmd is tern help [CMD...]: the help of a command, as CMD --help shows it. cobra's own
// shows the top-level help, with status 0, for a command it does not know.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "help [command]",
		Short:   "the usage of a command, as tern COMMAND --help shows it",
		Example: "  tern help user add",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			switch {
			case err != nil:
				return fmt.Errorf("%w: %v", errUsage, err)
			case len(rest) > 0:
				return fmt.Errorf("%w: unknown command %q", errUsage, strings.Join(args, " "))
			}
			// As cobra does when it runs cmd: the flags its help lists.
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// groupRun is the RunE of a command that only holds subcommands: without one, or with an
// unknown one, it is a usage error (cobra would print the help and exit 0).
func groupRun(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: missing command (%s)", errUsage, strings.Join(names, ", "))
	}
	return fmt.Errorf("%w: unknown command %q (%s)", errUsage, args[0], strings.Join(names, ", "))
}

// nargs checks that a command has between min and max arguments, the ones its Use names.
func nargs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case max == 0 && len(args) > 0:
			return fmt.Errorf("%w: takes no arguments, got %q", errUsage, args[0])
		case len(args) < min || len(args) > max:
			_, want, _ := strings.Cut(cmd.Use, " ")
			return fmt.Errorf("%w: wants %s, got %d argument(s)", errUsage, want, len(args))
		}
		return nil
	}
}

// common holds the flags of the commands that use the data directory: --config and --data for
// all, --domain and --auth-mechanisms for those that register them.
type common struct {
	configPath string
	data       string
	accounts   string
	domains    []string
	mechs      []string
	// creates is set for the commands that make the data directory when it is missing (serve,
	// user add); for the others load fails when there is none.
	creates bool
	// store is set for the commands that use only the account store: app checks the data
	// directory when the store is in it, and a store elsewhere (PostgreSQL) needs none.
	store bool
}

// register adds --config and --data.
func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.configPath, "config", "", "TOML configuration `FILE` (optional)")
	fs.StringVar(&c.data, "data", "", "the data directory `DIR` (default ./tern-data, or $TERN_DATA)")
}

// registerAccounts adds --accounts, to the commands that use the account store.
func (c *common) registerAccounts(fs *pflag.FlagSet) {
	fs.StringVar(&c.accounts, "accounts", "", "the account store `URL`: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB\n(default accounts.url, or $TERN_ACCOUNTS, or SQLite in the data directory)")
}

// registerDomains adds --domain.
func (c *common) registerDomains(fs *pflag.FlagSet) {
	fs.StringArrayVar(&c.domains, "domain", nil, "a local `DOMAIN` (repeatable; default localhost)")
}

// registerMechs adds --auth-mechanisms.
func (c *common) registerMechs(fs *pflag.FlagSet) {
	fs.StringArrayVar(&c.mechs, "auth-mechanisms", nil, "the SASL mechanisms (`LIST`) offered (serve) or whose secrets are stored (user add/passwd):\n"+
		"comma-separated, or \"all\" for the legacy ones too ("+strings.Join(config.LegacyMechanisms(), ",")+")\n"+
		"(default "+strings.Join(config.DefaultMechanisms(), ",")+")")
}

// load returns the configuration: defaults, then the file, then $TERN_DATA, then flags. Unless
// the command creates it or uses only the account store, the data directory must exist.
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
	if u := os.Getenv("TERN_ACCOUNTS"); u != "" {
		cfg.Accounts.URL = u
	}
	if c.accounts != "" {
		cfg.Accounts.URL = c.accounts
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
	if !c.creates && !c.store {
		if _, err := app.ExistingData(cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}
