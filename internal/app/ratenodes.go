package app

import (
	"log/slog"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/postgres"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// sharedLimits are the limits counted in the shared counter when the nodes share one: an
// account logs in at any node, so its limits must hold across them. The per-client limits
// stay per node (a client talks to the node it connected to, and counting its every
// connection in the database would cost a round trip each).
var sharedLimits = map[string]bool{
	policy.RateAccountMessages: true, policy.RateAccountRecipients: true,
	policy.RateDayMessages: true, policy.RateDayRecipients: true,
}

// splitCounter counts the sharedLimits in shared, when set, and the rest in local.
type splitCounter struct {
	local  *ratelimit.Memory
	shared ratelimit.Counter // nil: one node; set before the server starts
}

// Take implements ratelimit.Counter; a key is the limit's name, a space and whose it is.
func (c *splitCounter) Take(key string, n int, lim ratelimit.Limit) (bool, time.Duration) {
	if name, _, _ := strings.Cut(key, " "); c.shared != nil && sharedLimits[name] {
		return c.shared.Take(key, n, lim)
	}
	return c.local.Take(key, n, lim)
}

// shareLimits makes the per-account rate limits count across the nodes that share store, when
// it is PostgreSQL; while the database fails, they count on this node (logged).
func (r *rateLimits) shareLimits(store accounts.Store, log *slog.Logger) {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return
	}
	r.split.shared = postgres.NewCounter(pg, time.Now, r.counters, func(err error) {
		log.Warn("shared rate counters unavailable: this node's count meanwhile", "err", err)
	})
}
