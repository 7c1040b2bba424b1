package main

import (
	"fmt"
	"io"
)

// cmdAuth is tern auth: see internal/tools/authstr.
func cmdAuth(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return fmt.Errorf("%w: tern auth is not built yet", errUsage)
}
