package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

// newConfigCheckCmd is tern config check: the checks serve makes before it binds, without
// serving.
func newConfigCheckCmd(std stdio) *cobra.Command {
	c := common{creates: true} // as serve: a missing data directory is made at start
	cmd := &cobra.Command{
		Use:   "check",
		Short: "check the configuration as serve would, and report every problem",
		Long: `Reads the configuration file (and $TERN_DATA, --data) as tern serve does and checks everything
serve checks before it binds its ports: the syntax and types, unknown keys (with the nearest
known one), ranges, addresses, domains, and the files the settings name (certificate and key,
and that they match; keytab and principal map; the data directory). Each problem is printed as
FILE:LINE: KEY: WHAT, one per line. Exit status 0 when serve would start with this file (a port
in use is found only by serve), 1 otherwise.`,
		Example: "  tern config check --config /etc/tern/tern.toml && systemctl restart tern",
		Args:    nargs(0, 0),
	}
	c.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := c.load()
		if err == nil {
			err = app.Check(cfg)
		}
		if err == nil {
			name := c.configPath
			if name == "" {
				name = "the defaults"
			}
			_, err := fmt.Fprintf(std.out, "%s: ok\n", name)
			return err
		}
		for _, p := range config.Locate(c.configPath, err) {
			if _, err := fmt.Fprintln(std.out, p); err != nil {
				return err
			}
		}
		return exitCode(1)
	}
	return cmd
}
