package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date in the man pages' headers: a fixed one, so that the pages are the same
// wherever and whenever they are made (make docs; the lint compares them with docs/man).
var manDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// newManCmd is the hidden tern gen-man DIR: writes a man page for every command into DIR, from
// the same definitions as --help (make docs writes docs/man).
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the man pages of every command into DIR",
		Hidden: true,
		Args:   nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			err := doc.GenManTree(cmd.Root(), &doc.GenManHeader{
				Title: "TERN", Section: "1", Date: &manDate,
				Source: "tern", Manual: "tern manual",
			}, args[0])
			if err != nil {
				return fmt.Errorf("writing the man pages: %w", err)
			}
			return nil
		},
	}
}
