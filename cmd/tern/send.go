package main

import (
	"fmt"
	"io"
)

// cmdSend is tern send: see internal/tools/send.
func cmdSend(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return fmt.Errorf("%w: tern send is not built yet", errUsage)
}
