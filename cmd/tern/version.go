package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVersionCmd(std stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  argsUsage(0, 0, "tern version"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(std.out, "tern", version)
			return err
		},
	}
}
