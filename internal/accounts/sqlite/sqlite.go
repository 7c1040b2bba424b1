// Package sqlite is the accounts.Store backed by one SQLite file, through database/sql and the
// pure Go driver modernc.org/sqlite (no cgo).
//
// It owns that file's schema and its migrations, and nothing else: address rules and password
// hashing come from package accounts, so every backend treats them the same way.
//
// # Sharing the file
//
// The server and `tern user` commands in other processes open the same file at once. That is
// safe because the database runs in WAL mode (readers never block the writer, or the other
// way round), every connection waits up to busy_timeout for a lock instead of failing at
// once, and each write is a single autocommit statement or an IMMEDIATE transaction, which
// takes the write lock up front (a deferred transaction that reads first and then writes can
// fail with SQLITE_BUSY without waiting, because its snapshot is stale).
//
// # Lookups
//
// Exists, Resolve and AliasTargets (every RCPT TO, every local delivery) are answered from an
// in-process cache that is dropped as soon as anything commits to the file, from this process
// or another: see cache.go. Verify and Secret (AUTH) always query.
//
// # Schema
//
// The schema version is PRAGMA user_version; migrations[i] moves it from i to i+1. Open
// applies the missing steps in one IMMEDIATE transaction, so two processes opening a new file
// together do not both create the tables, and refuses a file newer than this program knows.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/tern-mail/tern/internal/accounts"

	// Registers the "sqlite" database/sql driver.
	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrSchemaTooNew is returned by Open when the file was migrated by a newer tern: running on
// it could silently ignore or damage what the newer version stored.
var ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this program")

// migrations are the schema steps, in order; migrations[i] upgrades user_version i to i+1.
// Append only: a released step must never change, since files in the field already ran it.
var migrations = []string{
	// 1: accounts. The PRIMARY KEY is the index Exists and Verify use. created_at is Unix
	// seconds, for operators.
	`CREATE TABLE users (address TEXT PRIMARY KEY, password TEXT NOT NULL, created_at INTEGER NOT NULL)`,
	// 2: per-mechanism secrets (CRAM, DIGEST-MD5, SCRAM, NTLM), derived when the password is
	// set; they go with their account.
	`CREATE TABLE secrets (
		address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
		kind    TEXT NOT NULL,
		secret  BLOB NOT NULL,
		PRIMARY KEY (address, kind)
	)`,
	// 3: DKIM private keys per domain and selector (dkim.go). created_at is Unix seconds.
	`CREATE TABLE dkim_keys (
		domain     TEXT NOT NULL,
		selector   TEXT NOT NULL,
		algorithm  TEXT NOT NULL,
		state      TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		private    BLOB NOT NULL,
		PRIMARY KEY (domain, selector)
	)`,
	// 4: the statistics behind DMARC and TLS reports, and the reports sent (reports.go). day is
	// the UTC day as "2006-01-02", so that it sorts and compares as text; the times are Unix
	// seconds.
	`CREATE TABLE report_counts (
		kind    TEXT NOT NULL,
		day     TEXT NOT NULL,
		domain  TEXT NOT NULL,
		row     TEXT NOT NULL,
		policy  TEXT NOT NULL,
		success INTEGER NOT NULL,
		failure INTEGER NOT NULL,
		PRIMARY KEY (kind, day, domain, row)
	);
	CREATE TABLE reports_sent (
		kind        TEXT NOT NULL,
		domain      TEXT NOT NULL,
		report_id   TEXT NOT NULL,
		begin_at    INTEGER NOT NULL,
		end_at      INTEGER NOT NULL,
		destination TEXT NOT NULL,
		size        INTEGER NOT NULL,
		sent_at     INTEGER NOT NULL,
		queue_id    TEXT NOT NULL,
		note        TEXT NOT NULL,
		PRIMARY KEY (report_id, destination)
	);
	CREATE INDEX reports_sent_at ON reports_sent (sent_at);
	CREATE INDEX reports_sent_domain ON reports_sent (kind, domain, end_at)`,
	// 5: aliases (aliases.go), one row per target. address is local@domain or @domain; domain
	// is its domain, for listing.
	`CREATE TABLE aliases (
		address TEXT NOT NULL,
		target  TEXT NOT NULL,
		domain  TEXT NOT NULL,
		PRIMARY KEY (address, target)
	);
	CREATE INDEX aliases_domain ON aliases (domain, address)`,
	// 6: the admin web interface's logins (admins.go), apart from the mail accounts.
	`CREATE TABLE admins (name TEXT PRIMARY KEY, password TEXT NOT NULL, created_at INTEGER NOT NULL)`,
	// 7: the accounts disabled (disabled.go): they cannot log in; they go with their account.
	`CREATE TABLE disabled_users (address TEXT PRIMARY KEY REFERENCES users (address) ON DELETE CASCADE)`,
}

const (
	// busyTimeout is how long a connection waits for another connection or process to release
	// a lock before failing with SQLITE_BUSY. Writes are rare and short, so 5 s is only
	// reached when something is wrong.
	busyTimeout = 5 * time.Second

	// maxConns caps the connection pool. Exists runs once per RCPT TO from many sessions at
	// once; keeping this many connections open (idle too) avoids reopening the file, and
	// rerunning the DSN pragmas, under load, while a lookup takes microseconds so a few
	// connections serve many goroutines.
	maxConns = 8
)

// Store is an accounts.Store in one SQLite file. It is safe for concurrent use, and other
// processes may have the same file open through their own Store.
type Store struct {
	db *sql.DB

	// exists, password and secret are prepared once because they run for every RCPT TO and
	// every AUTH. password and secret find nothing for a disabled account.
	exists   *sql.Stmt
	password *sql.Stmt
	secret   *sql.Stmt
	// aliasTargets runs for every RCPT TO to a local domain (aliases.go), and resolve in its
	// place where alias expansion can ask both questions at once.
	aliasTargets *sql.Stmt
	resolve      *sql.Stmt

	// cache keeps the answers of Exists, Resolve and AliasTargets until the database changes (cache.go);
	// nil: none.
	cache *lookupCache

	// decoy makes Verify for an unknown address cost as much as for a known one.
	decoy accounts.Decoy
}

var _ accounts.Store = (*Store)(nil)

// Open opens the account database at path, creating it with mode 0600 if it does not exist,
// and brings its schema up to date. The mode of an existing file is left as the operator set
// it.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite would create the file with 0644 (minus umask), and it holds password hashes.
	// Its -wal and -shm files copy the database file's mode, so this covers them too.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	// One more for the connection the lookup cache keeps (cache.go).
	db.SetMaxOpenConns(maxConns + 1)
	db.SetMaxIdleConns(maxConns + 1)

	ctx := context.Background()
	s := &Store{db: db}
	if err := firstMigrate(ctx, db); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %s: %w", abs, err), db.Close())
	}
	if s.exists, err = db.PrepareContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM users WHERE address = ?)`); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	if s.password, err = db.PrepareContext(ctx,
		`SELECT password FROM users WHERE address = ?1 AND NOT EXISTS (SELECT 1 FROM disabled_users WHERE address = ?1)`); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	if s.secret, err = db.PrepareContext(ctx,
		`SELECT secret FROM secrets WHERE address = ?1 AND kind = ?2 AND NOT EXISTS (SELECT 1 FROM disabled_users WHERE address = ?1)`); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	if s.aliasTargets, err = db.PrepareContext(ctx,
		`SELECT target FROM aliases WHERE address = ? ORDER BY target`); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	// The NULL row says "an account"; NULL sorts first.
	if s.resolve, err = db.PrepareContext(ctx,
		`SELECT target FROM aliases WHERE address = ?1
		 UNION ALL SELECT NULL WHERE EXISTS (SELECT 1 FROM users WHERE address = ?1)
		 ORDER BY 1`); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	if s.cache, err = openCache(ctx, db); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// dsn builds the driver's data source name for the absolute path abs.
//
// It is a file: URI built with net/url, not "PATH?_pragma=...", because the driver splits the
// name at its first '?': a path containing '?' (or '#', or '%') would otherwise be cut short
// or misread. In a URI those are escaped, and SQLite unescapes them when opening.
//
// The driver runs each _pragma on every new connection, busy_timeout first (so the others
// wait for locks instead of failing), then the rest in lexical order. journal_mode=WAL is
// persistent in the file, but foreign_keys and busy_timeout are per connection, so they have
// to be in the DSN rather than run once after opening. _txlock=immediate makes BeginTx issue
// BEGIN IMMEDIATE; see the package comment for why.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// firstMigrate runs migrate on the store's first connection, retrying for up to busyTimeout
// while SQLite answers SQLITE_BUSY without waiting.
//
// busy_timeout does not cover every lock: the first connection to a new file switches it to
// WAL mode (the journal_mode pragma of the DSN), which needs a write lock while the connection
// already holds a read lock, and SQLite then fails at once instead of calling the busy handler,
// since waiting could deadlock. Two processes opening a new file together (two `tern user add`
// on a fresh data directory) hit that; once the file is in WAL mode the pragma changes nothing
// and takes no lock, so a retry succeeds.
func firstMigrate(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := migrate(ctx, db, migrations)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (with any extended code).
func isBusy(err error) bool {
	var se *driver.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// migrate applies the steps the database has not run yet, and records the new version, in one
// transaction.
func migrate(ctx context.Context, db *sql.DB, steps []string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	// Read inside the IMMEDIATE transaction: another process may have migrated the file
	// since we last looked.
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("%w: file has version %d, this program knows up to %d",
			ErrSchemaTooNew, version, len(steps))
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if version == len(steps) {
		return tx.Commit()
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(steps))); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}

// writePassword hashes password (slow: outside the transaction) and runs write with the
// normalized address and the hash in a transaction, then stores secrets with it.
func (s *Store) writePassword(ctx context.Context, addr, password string, secrets []accounts.Secret,
	write func(tx *sql.Tx, addr, hash string) error) error {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := write(tx, addr, hash); err != nil {
			return err
		}
		return insertSecrets(ctx, tx, addr, secrets)
	})
}

// Add implements accounts.Store.
func (s *Store) Add(ctx context.Context, addr, password string, secrets ...accounts.Secret) error {
	return s.writePassword(ctx, addr, password, secrets, func(tx *sql.Tx, addr, hash string) error {
		// ON CONFLICT DO NOTHING plus RowsAffected tells "already there" apart without parsing
		// driver error codes, and in one statement, so there is no check-then-insert race with
		// another process.
		res, err := tx.ExecContext(ctx,
			`INSERT INTO users (address, password, created_at) VALUES (?, ?, ?) ON CONFLICT (address) DO NOTHING`,
			addr, hash, time.Now().Unix())
		if err != nil {
			return fmt.Errorf("sqlite: add %s: %w", addr, err)
		}
		return oneRow(res, addr, accounts.ErrExists)
	})
}

// Delete implements accounts.Store. The account's secrets go with it (ON DELETE CASCADE).
func (s *Store) Delete(ctx context.Context, addr string) error {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE address = ?`, addr)
	if err != nil {
		return fmt.Errorf("sqlite: delete %s: %w", addr, err)
	}
	return oneRow(res, addr, accounts.ErrNotFound)
}

// SetPassword implements accounts.Store.
func (s *Store) SetPassword(ctx context.Context, addr, password string, secrets ...accounts.Secret) error {
	return s.writePassword(ctx, addr, password, secrets, func(tx *sql.Tx, addr, hash string) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password = ? WHERE address = ?`, hash, addr)
		if err != nil {
			return fmt.Errorf("sqlite: set password %s: %w", addr, err)
		}
		if err := oneRow(res, addr, accounts.ErrNotFound); err != nil {
			return err
		}
		// Secrets of the old password must not outlive it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE address = ?`, addr); err != nil {
			return fmt.Errorf("sqlite: set password %s: %w", addr, err)
		}
		return nil
	})
}

// Secret implements accounts.Store.
func (s *Store) Secret(ctx context.Context, addr, kind string) ([]byte, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return nil, err
	}
	var secret []byte
	err = s.secret.QueryRowContext(ctx, addr, kind).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s has no %s secret", accounts.ErrNotFound, addr, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: secret %s %s: %w", addr, kind, err)
	}
	return secret, nil
}

func insertSecrets(ctx context.Context, tx *sql.Tx, addr string, secrets []accounts.Secret) error {
	for _, sec := range secrets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (address, kind, secret) VALUES (?, ?, ?)`,
			addr, sec.Kind, sec.Value); err != nil {
			return fmt.Errorf("sqlite: store %s secret of %s: %w", sec.Kind, addr, err)
		}
	}
	return nil
}

// inTx runs f in an IMMEDIATE transaction and commits it if f returns nil.
func (s *Store) inTx(ctx context.Context, f func(*sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// oneRow returns nil if res changed a row and errNone, wrapped with addr, if it changed none.
func oneRow(res sql.Result, addr string, errNone error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", addr, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", errNone, addr)
	}
	return nil
}

// List implements accounts.Store. The order is SQLite's BINARY collation, which compares UTF-8
// bytes, the same order as sort.Strings.
func (s *Store) List(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT address FROM users ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err, checked below, says what failed
	addrs := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", err)
		}
		addrs = append(addrs, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return addrs, nil
}

// Exists implements accounts.Store.
func (s *Store) Exists(ctx context.Context, addr string) (bool, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return false, err
	}
	return cached(s.cache, existsMap, addr, func() (bool, error) {
		var found bool
		if err := s.exists.QueryRowContext(ctx, addr).Scan(&found); err != nil {
			return false, fmt.Errorf("sqlite: exists %s: %w", addr, err)
		}
		return found, nil
	})
}

// Verify implements accounts.Store.
func (s *Store) Verify(ctx context.Context, addr, password string) (bool, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return false, err
	}
	var encoded string
	err = s.password.QueryRowContext(ctx, addr).Scan(&encoded)
	found := !errors.Is(err, sql.ErrNoRows)
	if found && err != nil {
		return false, fmt.Errorf("sqlite: verify %s: %w", addr, err)
	}
	ok, err := s.decoy.Verify(encoded, found, password)
	if err != nil {
		return false, fmt.Errorf("sqlite: verify %s: %w", addr, err)
	}
	return ok, nil
}

// Close implements accounts.Store.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.exists, s.password, s.secret, s.aliasTargets, s.resolve} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.cache.close(s.db.Close))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}
