package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newReloadCmd(std stdio) *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "make the running server read its configuration again, as SIGHUP does",
		Long: `Asks the running server, through DATA/admin.sock, to reload: it reads the configuration file it
was started with again (with the same flags), checks it as tern config check does, and applies
it to the sessions that start from then on (sessions in progress keep their settings); the
certificate files and DATA/srs.secret are read again too, and a listener moved is opened anew.
Counters and blocks are kept (rate limits, failed AUTH, connections open, the greylist). What
cannot change in place (the data directory, the account store, [queue], [delivery], [log]...)
is logged as taking effect after a restart; the README's Reload section lists it. A
configuration with problems is refused: the server keeps the one in force, and tern reload prints
the problems as FILE:LINE: KEY: WHAT and exits with status 1.`,
		Example: `  tern reload
  tern config check --config /etc/tern/tern.toml && tern reload --data /var/lib/tern`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			err = app.ReloadCommand(context.Background(), cfg, std.out)
			if errors.Is(err, app.ErrReloadRefused) {
				return exitCode(1) // the problems are printed
			}
			return err
		},
	}
	c.register(cmd.Flags())
	return cmd
}
