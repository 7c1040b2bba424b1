package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/tools/authstr"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

const authHelp = `usage: tern auth MECH [flags] ARGS...    make SMTP AUTH strings by hand, like gen-auth

Prints the base64 line(s) to send to the server, one per line, and nothing else; --explain
adds annotated "## " lines on standard error. A missing PASS or TOKEN is read from the
terminal without echo, or from the first line of standard input. Mechanism names are
case-insensitive; flags may come before or after the arguments ("--" ends the flags).
A CHALLENGE is what the server sent after "334 " (the "334 " may be copied along).

`

const authHelpEnd = `
Flags of every mechanism: --explain (annotate on standard error), --show-secrets (show
passwords and tokens in annotations and in decode). "tern auth MECH -h" lists a mechanism's flags.
`

// cmdAuth is tern auth: see internal/tools/authstr.
func cmdAuth(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return authUsage(nil, "missing MECH")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, authHelp+authstr.Help()+authHelpEnd)
		return flag.ErrHelp
	}
	cmd, err := authstr.Lookup(args[0])
	if errors.Is(err, authstr.ErrChannelBinding) {
		return fmt.Errorf("%w: tern auth %s: %v\n  (tern auth -h lists the mechanisms)", errUsage, strings.ToLower(args[0]), err)
	}
	if err != nil {
		return authUsage(nil, err.Error())
	}
	var f authstr.Flags
	fs := flag.NewFlagSet("tern auth "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	f.Bind(fs, cmd)
	pos, err := parseInterspersed(fs, args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: tern auth %s\n\nflags:\n", cmd.Use())
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return err
	case err != nil:
		return authUsage(&cmd, err.Error())
	}
	err = authstr.Run(cmd, f, pos, authstr.IO{In: secretin.New(stdin, stderr), Out: stdout, Err: stderr})
	if ue := (*authstr.UsageError)(nil); errors.As(err, &ue) {
		return authUsage(&cmd, ue.Msg)
	}
	return err
}

// authUsage is a usage error with the short usage of the subcommand (cmd nil: of tern auth).
func authUsage(cmd *authstr.Command, msg string) error {
	if cmd != nil {
		return fmt.Errorf("%w: tern auth %s: %s\n  tern auth %s\n  (tern auth %s -h lists its flags; tern auth -h every mechanism)",
			errUsage, cmd.Name, msg, cmd.Use(), cmd.Name)
	}
	return fmt.Errorf("%w: tern auth: %s\n  tern auth MECH [flags] ARGS...   MECH: %s\n  (tern auth -h shows an example of each)",
		errUsage, msg, strings.Join(authstr.Names(), " "))
}

// parseInterspersed parses flags wherever they are among the arguments (people type
// `tern auth digest-md5 bob pw CHALLENGE --host mx`), and returns the arguments. After "--",
// everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first argument, or after "--" (which it consumes).
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
