package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newBackupCmd(std stdio) *cobra.Command {
	var c common
	var withMail bool
	cmd := &cobra.Command{
		Use:   "backup DIR",
		Short: "copy the accounts, the queue and the certificates, while the server runs",
		Long: `Copies the data directory's state into DIR (new, or empty), consistently, while the server
runs and takes mail: the account database through SQLite's VACUUM INTO (the database at one
instant), the queue through the running server, which links its log segments and body files
at one instant (docs/deploy.md, "Backups"), the certificates and the other small files. Every
message acknowledged (250) before the backup started is in the copy. With the server stopped,
the queue is copied under the data directory's lock.

The Maildirs are the users' mail and usually the largest part: back them up with the host's
file backup, or add --mail to copy them too. tern restore DIR puts a backup into a new data
directory.`,
		Example: `  tern backup /var/backups/tern/$(date +%F)
  tern backup --mail --data /var/lib/tern /srv/backup/tern`,
		Args: nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.BackupCommand(context.Background(), cfg, args[0], withMail, std.out)
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().BoolVar(&withMail, "mail", false, "copy the Maildirs too")
	return cmd
}

func newRestoreCmd(std stdio) *cobra.Command {
	c := common{creates: true}
	cmd := &cobra.Command{
		Use:   "restore DIR",
		Short: "put a backup made by tern backup into a new data directory",
		Long: `Copies the backup in DIR into the data directory, which must not exist or be empty: restore
never writes over a server's state. Start the server on it afterwards: it replays the queue
and delivers the messages still pending. Without --mail in the backup, restore the Maildirs
(DATA/mail) from the file backup.`,
		Example: `  tern restore --data /var/lib/tern /var/backups/tern/2026-12-05`,
		Args:    nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.RestoreCommand(cfg, args[0], std.out)
		},
	}
	c.register(cmd.Flags())
	return cmd
}
