package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/config"
)

func newConfigCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "the configuration file",
		Example: "  tern config example\n  tern config check --config /etc/tern/tern.toml",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "print an annotated config file with all defaults",
		Example: `  tern config example > /etc/tern/tern.toml
  tern serve --config /etc/tern/tern.toml`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(std.out, config.Example())
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "reference",
		Short:   "print the reference of every key (Markdown, as docs/config.md)",
		Example: "  tern config reference > docs/config.md",
		Args:    nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(std.out, config.Reference())
			return err
		},
	})
	cmd.AddCommand(newConfigCheckCmd(std))
	return cmd
}
