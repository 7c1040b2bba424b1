package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddDKIMKey implements accounts.Store.
func (s *Store) AddDKIMKey(ctx context.Context, k accounts.DKIMKey) error {
	// As in Add: ON CONFLICT DO NOTHING and RowsAffected tell "already there" in one statement.
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO dkim_keys (domain, selector, algorithm, state, created_at, private) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (domain, selector) DO NOTHING`,
		k.Domain, k.Selector, k.Algorithm, string(k.State), k.Created.Unix(), k.Private)
	if err != nil {
		return fmt.Errorf("sqlite: add DKIM key %s of %s: %w", k.Selector, k.Domain, err)
	}
	return oneRow(res, "DKIM key "+k.Selector+" of "+k.Domain, accounts.ErrExists)
}

// DKIMKeys implements accounts.Store.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]accounts.DKIMKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT domain, selector, algorithm, state, created_at, private FROM dkim_keys
		 WHERE ? = '' OR domain = ? ORDER BY domain, created_at, selector`, domain, domain)
	if err != nil {
		return nil, fmt.Errorf("sqlite: DKIM keys: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	var keys []accounts.DKIMKey
	for rows.Next() {
		var k accounts.DKIMKey
		var state string
		var created int64
		if err := rows.Scan(&k.Domain, &k.Selector, &k.Algorithm, &state, &created, &k.Private); err != nil {
			return nil, fmt.Errorf("sqlite: DKIM keys: %w", err)
		}
		k.State, k.Created = accounts.DKIMState(state), time.Unix(created, 0)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: DKIM keys: %w", err)
	}
	return keys, nil
}

// SetDKIMStates implements accounts.Store.
func (s *Store) SetDKIMStates(ctx context.Context, domain string, states map[string]accounts.DKIMState) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for sel, st := range states {
			res, err := tx.ExecContext(ctx, `UPDATE dkim_keys SET state = ? WHERE domain = ? AND selector = ?`,
				string(st), domain, sel)
			if err != nil {
				return fmt.Errorf("sqlite: DKIM key %s of %s: %w", sel, domain, err)
			}
			if err := oneRow(res, "DKIM key "+sel+" of "+domain, accounts.ErrNotFound); err != nil {
				return err
			}
		}
		return nil
	})
}
