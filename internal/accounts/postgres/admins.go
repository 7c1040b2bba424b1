package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddAdmin implements accounts.AdminStore.
func (s *Store) AddAdmin(ctx context.Context, name, password string) error {
	name, hash, err := accounts.HashAdmin(name, password)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO admins (name, password, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, hash, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("postgres: add admin %s: %w", name, err)
	}
	return oneRow(tag, "admin "+name, accounts.ErrExists)
}

// SetAdminPassword implements accounts.AdminStore.
func (s *Store) SetAdminPassword(ctx context.Context, name, password string) error {
	name, hash, err := accounts.HashAdmin(name, password)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE admins SET password = $1 WHERE name = $2`, hash, name)
	if err != nil {
		return fmt.Errorf("postgres: set admin password %s: %w", name, err)
	}
	return oneRow(tag, "admin "+name, accounts.ErrNotFound)
}

// DeleteAdmin implements accounts.AdminStore.
func (s *Store) DeleteAdmin(ctx context.Context, name string) error {
	name, err := accounts.NormalizeAdmin(name)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM admins WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres: delete admin %s: %w", name, err)
	}
	return oneRow(tag, "admin "+name, accounts.ErrNotFound)
}

// Admins implements accounts.AdminStore, in byte order (the "C" collation).
func (s *Store) Admins(ctx context.Context) ([]string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT name FROM admins ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: admins: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: admins: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// VerifyAdmin implements accounts.AdminStore.
func (s *Store) VerifyAdmin(ctx context.Context, name, password string) (bool, error) {
	name, err := accounts.NormalizeAdmin(name)
	if err != nil {
		// A malformed name is no admin: answered as a wrong password, in the same time.
		return false, s.decoy.Check(password)
	}
	qctx, cancel := bound(ctx)
	defer cancel()
	var encoded string
	err = s.pool.QueryRow(qctx, `SELECT password FROM admins WHERE name = $1`, name).Scan(&encoded)
	found := !errors.Is(err, pgx.ErrNoRows)
	if found && err != nil {
		return false, fmt.Errorf("postgres: verify admin %s: %w", name, err)
	}
	ok, err := s.decoy.Verify(encoded, found, password)
	if err != nil {
		return false, fmt.Errorf("postgres: verify admin %s: %w", name, err)
	}
	return ok, nil
}

// AdminStamp implements accounts.AdminStore.
func (s *Store) AdminStamp(ctx context.Context, name string) (string, error) {
	name, err := accounts.NormalizeAdmin(name)
	if err != nil {
		return "", nil // a malformed name is no admin
	}
	qctx, cancel := bound(ctx)
	defer cancel()
	var encoded string
	err = s.pool.QueryRow(qctx, `SELECT password FROM admins WHERE name = $1`, name).Scan(&encoded)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("postgres: admin %s: %w", name, err)
	}
	return accounts.AdminStampOf(encoded), nil
}
