package postgres

import (
	"context"
	"fmt"

	"github.com/tern-mail/tern/internal/accounts"
)

// SetDisabled implements accounts.Store.
func (s *Store) SetDisabled(ctx context.Context, addr string, disabled bool) error {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	// As in package sqlite: the insert takes its row from users, so that an account deleted
	// meanwhile is ErrNotFound.
	q := `INSERT INTO disabled_users (address) SELECT address FROM users WHERE address = $1 ON CONFLICT (address) DO NOTHING`
	if !disabled {
		q = `DELETE FROM disabled_users WHERE address = $1`
	}
	qctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(qctx, q, addr); err != nil {
		return fmt.Errorf("postgres: disable %s: %w", addr, err)
	}
	ok, err := s.Exists(ctx, addr)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", accounts.ErrNotFound, addr)
	}
	return nil
}

// IsDisabled implements accounts.Store.
func (s *Store) IsDisabled(ctx context.Context, addr string) (bool, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return false, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var d bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM disabled_users WHERE address = $1)`, addr).Scan(&d); err != nil {
		return false, fmt.Errorf("postgres: disabled %s: %w", addr, err)
	}
	return d, nil
}
