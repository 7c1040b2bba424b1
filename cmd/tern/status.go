package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newStatusCmd(std stdio) *cobra.Command {
	var c common
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "the running server's sessions, queue length, goroutines, open files and memory",
		Long: `Asks the running server, through DATA/admin.sock, for its figures: open SMTP sessions, queue
length, goroutines, open files and resident memory.`,
		Example: `  tern status
  tern status --json --data /var/lib/tern`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			return app.StatusCommand(context.Background(), cfg, asJSON, std.out)
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as one JSON object")
	return cmd
}
