package app

import (
	"log/slog"
	"strings"
	"sync/atomic"
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

// sharedAuthCounter is the counter the failed-AUTH limiter shares with the other nodes on
// store, when it is PostgreSQL (nil otherwise). While the database fails it lets everything
// through, so this node's own records decide; that is logged at most once a minute, since
// every AUTH asks it.
func sharedAuthCounter(store accounts.Store, log *slog.Logger) ratelimit.Counter {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil
	}
	var logged atomic.Int64 // when it was last logged, in Unix seconds
	return postgres.NewCounter(pg, time.Now, letThrough{}, func(err error) {
		now := time.Now().Unix()
		if last := logged.Load(); now-last >= 60 && logged.CompareAndSwap(last, now) {
			log.Warn("shared auth limits unavailable: this node's failed-AUTH blocks only meanwhile", "err", err)
		}
	})
}

// letThrough is a ratelimit.Counter that counts nothing and refuses nothing.
type letThrough struct{}

func (letThrough) Take(string, int, ratelimit.Limit) (bool, time.Duration) { return true, 0 }
