package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
)

// StatusCommand prints the running server's runtime figures (tern status): open sessions, queue
// length, goroutines, open files and resident size; as one JSON object when asJSON is set.
func StatusCommand(ctx context.Context, cfg config.Config, asJSON bool, w io.Writer) error {
	rep, err := callRunning(ctx, cfg, admin.Request{Op: admin.OpStatus})
	switch {
	case err != nil:
		return err
	case rep.Status == nil:
		return errors.New("the server sent no figures (is it older than this tern?)")
	}
	if asJSON {
		return json.NewEncoder(w).Encode(rep.Status)
	}
	_, err = io.WriteString(w, statusText(*rep.Status))
	return err
}

func statusText(st admin.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sessions:    %d\n", st.Sessions)
	fmt.Fprintf(&b, "queue:       %d message%s\n", st.Queue, plural(st.Queue))
	fmt.Fprintf(&b, "goroutines:  %d\n", st.Goroutines)
	fmt.Fprintf(&b, "open files:  %d\n", st.OpenFiles)
	if st.RSS < 0 {
		b.WriteString("rss:         unknown\n")
	} else {
		fmt.Fprintf(&b, "rss:         %.1f MiB\n", float64(st.RSS)/(1<<20))
	}
	return b.String()
}
