package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// LimitsCommand prints the running server's rate limit counters (tern limits show): each limit
// and whom it counts, how much of it is used, its window and when every event counted is
// forgotten, the closest to their limit first; as a JSON array when asJSON is set.
func LimitsCommand(ctx context.Context, cfg config.Config, asJSON bool, now time.Time, w io.Writer) error {
	rep, err := callRunning(ctx, cfg, admin.Request{Op: admin.OpLimits})
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]limitJSON, 0, len(rep.Limits))
		for _, u := range rep.Limits {
			name, who, _ := strings.Cut(u.Key, " ")
			out = append(out, limitJSON{Limit: name, Who: who, Used: u.Used, Max: u.Limit,
				Window: u.Window.String(), ResetsAt: u.Reset.UTC().Format(time.RFC3339), ResetsIn: max(u.Reset.Sub(now), 0).Seconds()})
		}
		return json.NewEncoder(w).Encode(out)
	}
	return writeLimits(w, rep.Limits, now)
}

// limitJSON is one counter in tern limits show --json.
type limitJSON struct {
	Limit    string  `json:"limit"`     // policy's name: connections, messages, account-messages, outbound...
	Who      string  `json:"who"`       // client address (IPv6: its /64), account or domain
	Used     int     `json:"used"`      // events that still count
	Max      int     `json:"max"`       // the limit
	Window   string  `json:"window"`    // "1m0s"
	ResetsAt string  `json:"resets_at"` // when every event counted is forgotten (RFC 3339, UTC)
	ResetsIn float64 `json:"resets_in"` // the same, in seconds from now
}

// writeLimits writes the counters as a table.
func writeLimits(w io.Writer, us []ratelimit.Usage, now time.Time) error {
	if len(us) == 0 {
		_, err := io.WriteString(w, "no rate limit counters in use\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if _, err := fmt.Fprintln(tw, "LIMIT\tWHO\tUSED\tPER\tRESETS IN"); err != nil {
		return err
	}
	for _, u := range us {
		name, who, _ := strings.Cut(u.Key, " ")
		if _, err := fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", name, who, u.Used, u.Limit, policy.WindowText(u.Window),
			max(u.Reset.Sub(now), 0).Round(time.Second)); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// callRunning sends req to the running server's admin socket, and turns the ways that fails
// into errors for the command line.
func callRunning(ctx context.Context, cfg config.Config, req admin.Request) (admin.Reply, error) {
	data, err := ExistingData(cfg)
	if err != nil {
		return admin.Reply{}, err
	}
	rep, err := admin.Call(ctx, adminPath(data), req)
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return rep, fmt.Errorf("no server is running on %s (its admin socket does not answer)", data)
	case err != nil:
		return rep, dataError(data, "cannot ask the running server", err)
	case rep.Error != "":
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}
