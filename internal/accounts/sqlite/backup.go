package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the account database at src to dst (a new file, mode
// 0600) while other connections and processes (a running server) go on using it: VACUUM INTO
// reads the database in one read transaction, so the copy is the database at one instant,
// compacted, with no WAL to go with it. Writers are not blocked (WAL mode).
func Backup(ctx context.Context, src, dst string) (err error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("sqlite: %w", err) // never create an empty database to back it up
	}
	// VACUUM INTO wants a new or empty file; made here so that it has the mode of the original.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("sqlite: backup %s to %s: %w", abs, dst, err)
	}
	return nil
}
