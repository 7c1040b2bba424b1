package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/ratelimit"
)

const (
	// counterTimeout bounds one Take: a rate check must not hold a session for opTimeout.
	counterTimeout = 2 * time.Second

	// sweepEvery is how many Takes pass between deletions of the keys whose time has passed
	// (a key whose time has passed is the same as no key: nothing is lost).
	sweepEvery = 1000
)

// Counter is a ratelimit.Counter whose buckets are rows of the database, so that every node
// on it counts against the same limits. Each Take is one statement: an UPSERT that moves the
// key's GCRA time only when the events fit, so concurrent nodes never both take the last
// event. The times are those of the nodes' clocks (keep them synchronized, as NTP does).
//
// When the database fails, Take asks Fallback (this node's counters) and reports the error to
// OnError: a limit then holds per node rather than not at all, and never refuses mail because
// the database is down.
type Counter struct {
	s        *Store
	now      func() time.Time
	fallback ratelimit.Counter
	onError  func(error)
	takes    atomic.Int64 // Takes that went through, for the sweep
}

var _ ratelimit.Counter = (*Counter)(nil)

// NewCounter returns the shared counter on s's database.
func NewCounter(s *Store, now func() time.Time, fallback ratelimit.Counter, onError func(error)) *Counter {
	return &Counter{s: s, now: now, fallback: fallback, onError: onError}
}

// Take implements ratelimit.Counter.
func (c *Counter) Take(key string, n int, lim ratelimit.Limit) (bool, time.Duration) {
	if lim.Off() || n <= 0 {
		return true, 0
	}
	if n > lim.N {
		return false, lim.Window
	}
	ok, retry, err := c.take(key, n, lim)
	if err != nil {
		c.onError(fmt.Errorf("postgres: rate counter %s: %w", key, err))
		return c.fallback.Take(key, n, lim)
	}
	return ok, retry
}

func (c *Counter) take(key string, n int, lim ratelimit.Limit) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), counterTimeout)
	defer cancel()
	now := c.now().UnixNano()
	inc := int64(n) * int64(max(lim.Window/time.Duration(lim.N), 1))
	window := int64(lim.Window)
	// The events fit when, once added, the bucket holds no more than the window (as
	// ratelimit.Memory); a refused Take changes nothing and returns no row.
	var tat int64
	err := c.s.pool.QueryRow(ctx, `INSERT INTO rate_counters AS r (key, tat) VALUES ($1, $2::BIGINT + $3::BIGINT)
		ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, $2::BIGINT) + $3::BIGINT
		WHERE GREATEST(r.tat, $2::BIGINT) + $3::BIGINT - $2::BIGINT <= $4::BIGINT
		RETURNING tat`, key, now, inc, window).Scan(&tat)
	if err == nil {
		c.sweep(ctx, now)
		return true, 0, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, 0, err
	}
	// Refused: how long until the events would fit.
	if err := c.s.pool.QueryRow(ctx, `SELECT tat FROM rate_counters WHERE key = $1`, key).Scan(&tat); err != nil {
		return false, 0, err
	}
	over := max(tat, now) + inc - now - window
	return false, time.Duration(max(over, 1)), nil
}

// sweep deletes the expired keys once every sweepEvery Takes of this node.
func (c *Counter) sweep(ctx context.Context, now int64) {
	if c.takes.Add(1)%sweepEvery != 0 {
		return
	}
	if _, err := c.s.pool.Exec(ctx, `DELETE FROM rate_counters WHERE tat < $1`, now); err != nil {
		c.onError(fmt.Errorf("postgres: sweep rate counters: %w", err))
	}
}
