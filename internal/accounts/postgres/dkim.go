package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddDKIMKey implements accounts.Store.
func (s *Store) AddDKIMKey(ctx context.Context, k accounts.DKIMKey) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO dkim_keys (domain, selector, algorithm, state, created_at, private) VALUES ($1, $2, $3, $4, $5, $6)
		 ON CONFLICT (domain, selector) DO NOTHING`,
		k.Domain, k.Selector, k.Algorithm, string(k.State), k.Created.Unix(), k.Private)
	if err != nil {
		return fmt.Errorf("postgres: add DKIM key %s of %s: %w", k.Selector, k.Domain, err)
	}
	return oneRow(tag, "DKIM key "+k.Selector+" of "+k.Domain, accounts.ErrExists)
}

// DKIMKeys implements accounts.Store.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]accounts.DKIMKey, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx,
		`SELECT domain, selector, algorithm, state, created_at, private FROM dkim_keys
		 WHERE $1 = '' OR domain = $1 ORDER BY domain, created_at, selector`, domain)
	if err != nil {
		return nil, fmt.Errorf("postgres: DKIM keys: %w", err)
	}
	var keys []accounts.DKIMKey
	var k accounts.DKIMKey
	var state string
	var created int64
	_, err = pgx.ForEachRow(rows, []any{&k.Domain, &k.Selector, &k.Algorithm, &state, &created, &k.Private}, func() error {
		k.State, k.Created = accounts.DKIMState(state), time.Unix(created, 0)
		keys = append(keys, k)
		k.Private = nil // the next row scans into a new slice
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: DKIM keys: %w", err)
	}
	return keys, nil
}

// SetDKIMStates implements accounts.Store.
func (s *Store) SetDKIMStates(ctx context.Context, domain string, states map[string]accounts.DKIMState) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for sel, st := range states {
			tag, err := tx.Exec(ctx, `UPDATE dkim_keys SET state = $1 WHERE domain = $2 AND selector = $3`,
				string(st), domain, sel)
			if err != nil {
				return fmt.Errorf("postgres: DKIM key %s of %s: %w", sel, domain, err)
			}
			if err := oneRow(tag, "DKIM key "+sel+" of "+domain, accounts.ErrNotFound); err != nil {
				return err
			}
		}
		return nil
	})
}
