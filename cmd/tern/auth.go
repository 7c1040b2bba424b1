package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/tools/authstr"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

const authLong = `Prints the base64 line(s) to send to the server, one per line, and nothing else; --explain
adds annotated "## " lines on standard error. A missing PASS or TOKEN is read from the
terminal without echo, or from the first line of standard input. Mechanism names are
case-insensitive; flags may come before or after the arguments ("--" ends the flags).
A CHALLENGE is what the server sent after "334 " (the "334 " may be copied along).
scram-* and gssapi read each 334 line the server sends from standard input, and answer it;
scram-* then says on standard error whether the server's signature verified (status 1 if not).

`

const authLongEnd = `
Flags of every mechanism: --explain (annotate on standard error), --show-secrets (show
passwords and tokens in annotations and in decode). "tern auth MECH -h" lists a mechanism's flags.`

// newAuthCmd is tern auth: each of authstr's commands is a subcommand, with its own flags.
func newAuthCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth MECH [flags] ARGS...",
		Short: "make SMTP AUTH strings by hand, like gen-auth",
		Long:  authLong + authstr.Help() + authLongEnd,
		Args:  cobra.ArbitraryArgs,
		// cobra finds the lower-case names; this command gets the others, flags and all.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return authUsage(nil, "missing MECH")
			}
			switch args[0] {
			case "help", "-h", "--help":
				return cmd.Help()
			}
			c, err := authstr.Lookup(args[0])
			switch {
			case errors.Is(err, authstr.ErrChannelBinding):
				return fmt.Errorf("%w: tern auth %s: %v", errUsage, strings.ToLower(args[0]), err)
			case err != nil:
				return authUsage(nil, err.Error())
			}
			sub, _, err := cmd.Find([]string{c.Name})
			if err != nil {
				return err
			}
			return runSub(sub, args[1:])
		},
	}
	for _, c := range authstr.Commands() {
		cmd.AddCommand(newAuthMechCmd(std, c))
	}
	return cmd
}

// newAuthMechCmd is tern auth MECH.
func newAuthMechCmd(std stdio, c authstr.Command) *cobra.Command {
	var f authstr.Flags
	cmd := &cobra.Command{
		Use:     c.Name + " " + c.Args,
		Aliases: c.Aliases,
		Short:   c.Short,
		Example: "  " + strings.ReplaceAll(c.Example, "\n", "\n  "),
		Args:    cobra.ArbitraryArgs, // authstr.Run checks them
		RunE: func(_ *cobra.Command, args []string) error {
			err := authstr.Run(c, f, args, authstr.IO{In: secretin.New(std.in, std.err), Out: std.out, Err: std.err})
			if ue := (*authstr.UsageError)(nil); errors.As(err, &ue) {
				return authUsage(&c, ue.Msg)
			}
			return err
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return authUsage(&c, err.Error()) })
	f.Bind(cmd.Flags(), c)
	return cmd
}

// runSub runs the subcommand sub with args, as cobra would have: for a mechanism name not in
// lower case.
func runSub(sub *cobra.Command, args []string) error {
	sub.InitDefaultHelpFlag()
	if err := sub.ParseFlags(args); err != nil {
		return sub.FlagErrorFunc()(sub, err)
	}
	if help, _ := sub.Flags().GetBool("help"); help {
		return sub.Help()
	}
	pos := sub.Flags().Args()
	if err := sub.ValidateArgs(pos); err != nil {
		return err
	}
	return sub.RunE(sub, pos)
}

// authUsage is a usage error of the subcommand (c nil: of tern auth), in one line; run adds
// where the usage is.
func authUsage(c *authstr.Command, msg string) error {
	if c != nil {
		return fmt.Errorf("%w: tern auth %s: %s", errUsage, c.Name, msg)
	}
	return fmt.Errorf("%w: tern auth: %s (MECH is one of: %s)", errUsage, msg, strings.Join(authstr.Names(), " "))
}
