package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddAdmin implements accounts.AdminStore.
func (s *Store) AddAdmin(ctx context.Context, name, password string) error {
	name, hash, err := accounts.HashAdmin(name, password)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO admins (name, password, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, hash, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("sqlite: add admin %s: %w", name, err)
	}
	return oneRow(res, "admin "+name, accounts.ErrExists)
}

// SetAdminPassword implements accounts.AdminStore.
func (s *Store) SetAdminPassword(ctx context.Context, name, password string) error {
	name, hash, err := accounts.HashAdmin(name, password)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE admins SET password = ? WHERE name = ?`, hash, name)
	if err != nil {
		return fmt.Errorf("sqlite: set admin password %s: %w", name, err)
	}
	return oneRow(res, "admin "+name, accounts.ErrNotFound)
}

// DeleteAdmin implements accounts.AdminStore.
func (s *Store) DeleteAdmin(ctx context.Context, name string) error {
	name, err := accounts.NormalizeAdmin(name)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM admins WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete admin %s: %w", name, err)
	}
	return oneRow(res, "admin "+name, accounts.ErrNotFound)
}

// Admins implements accounts.AdminStore.
func (s *Store) Admins(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM admins ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: admins: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err, checked below, says what failed
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: admins: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: admins: %w", err)
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
	var encoded string
	err = s.db.QueryRowContext(ctx, `SELECT password FROM admins WHERE name = ?`, name).Scan(&encoded)
	found := !errors.Is(err, sql.ErrNoRows)
	if found && err != nil {
		return false, fmt.Errorf("sqlite: verify admin %s: %w", name, err)
	}
	ok, err := s.decoy.Verify(encoded, found, password)
	if err != nil {
		return false, fmt.Errorf("sqlite: verify admin %s: %w", name, err)
	}
	return ok, nil
}

// AdminStamp implements accounts.AdminStore.
func (s *Store) AdminStamp(ctx context.Context, name string) (string, error) {
	name, err := accounts.NormalizeAdmin(name)
	if err != nil {
		return "", nil // a malformed name is no admin
	}
	var encoded string
	err = s.db.QueryRowContext(ctx, `SELECT password FROM admins WHERE name = ?`, name).Scan(&encoded)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("sqlite: admin %s: %w", name, err)
	}
	return accounts.AdminStampOf(encoded), nil
}
