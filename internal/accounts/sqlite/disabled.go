package sqlite

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
	// One statement each way, so that an account deleted meanwhile is ErrNotFound, not a
	// foreign key error: the insert takes its row from users.
	q := `INSERT INTO disabled_users (address) SELECT address FROM users WHERE address = ?1 ON CONFLICT (address) DO NOTHING`
	if !disabled {
		q = `DELETE FROM disabled_users WHERE address = ?1`
	}
	if _, err := s.db.ExecContext(ctx, q, addr); err != nil {
		return fmt.Errorf("sqlite: disable %s: %w", addr, err)
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
	var d bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM disabled_users WHERE address = ?)`, addr).Scan(&d); err != nil {
		return false, fmt.Errorf("sqlite: disabled %s: %w", addr, err)
	}
	return d, nil
}
