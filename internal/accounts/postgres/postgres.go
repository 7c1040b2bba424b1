// Package postgres is the accounts.Store backed by a PostgreSQL database, through pgx's
// connection pool, so that several tern nodes share accounts, secrets, aliases, DKIM keys and
// report counts (docs/scaling.md), and a ratelimit.Counter on the same database (Counter), so
// that they share rate limits.
//
// It owns that database's schema and its migrations, and nothing else: address rules and
// password hashing come from package accounts, so every backend treats them the same way. The
// semantics are those of package sqlite; the same suite (accounts/storetest) runs on both.
//
// # Schema
//
// The schema version is the one row of tern_schema; migrations[i] moves it from i to i+1. Open
// applies the missing steps in one transaction holding a transaction-level advisory lock, so
// that nodes starting together run each step once, and refuses a database newer than this
// program knows. Text columns use the "C" collation, so that lists sort by bytes as SQLite's
// BINARY collation does, whatever the database's locale.
//
// # Failures
//
// Every operation is bounded by opTimeout; an unreachable server is an error that wraps none of
// accounts' sentinels, which the server answers with a temporary failure (454 for AUTH, 451
// for RCPT), never as "no such account".
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tern-mail/tern/internal/accounts"
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a newer tern.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this program")

// migrations are the schema steps, in order: 1 to 5 are those of package sqlite in
// PostgreSQL's types.
// Append only: a released step must never change.
var migrations = []string{
	// 1: accounts. created_at is Unix seconds.
	`CREATE TABLE users (address TEXT COLLATE "C" PRIMARY KEY, password TEXT NOT NULL, created_at BIGINT NOT NULL)`,
	// 2: per-mechanism secrets, which go with their account.
	`CREATE TABLE secrets (
		address TEXT COLLATE "C" NOT NULL REFERENCES users (address) ON DELETE CASCADE,
		kind    TEXT COLLATE "C" NOT NULL,
		secret  BYTEA NOT NULL,
		PRIMARY KEY (address, kind)
	)`,
	// 3: DKIM private keys per domain and selector.
	`CREATE TABLE dkim_keys (
		domain     TEXT COLLATE "C" NOT NULL,
		selector   TEXT COLLATE "C" NOT NULL,
		algorithm  TEXT NOT NULL,
		state      TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		private    BYTEA NOT NULL,
		PRIMARY KEY (domain, selector)
	)`,
	// 4: the statistics behind DMARC and TLS reports, and the reports sent.
	`CREATE TABLE report_counts (
		kind    TEXT COLLATE "C" NOT NULL,
		day     TEXT COLLATE "C" NOT NULL,
		domain  TEXT COLLATE "C" NOT NULL,
		"row"   TEXT COLLATE "C" NOT NULL,
		policy  TEXT NOT NULL,
		success BIGINT NOT NULL,
		failure BIGINT NOT NULL,
		PRIMARY KEY (kind, day, domain, "row")
	);
	CREATE TABLE reports_sent (
		kind        TEXT COLLATE "C" NOT NULL,
		domain      TEXT COLLATE "C" NOT NULL,
		report_id   TEXT COLLATE "C" NOT NULL,
		begin_at    BIGINT NOT NULL,
		end_at      BIGINT NOT NULL,
		destination TEXT COLLATE "C" NOT NULL,
		size        BIGINT NOT NULL,
		sent_at     BIGINT NOT NULL,
		queue_id    TEXT NOT NULL,
		note        TEXT NOT NULL,
		PRIMARY KEY (report_id, destination)
	);
	CREATE INDEX reports_sent_at ON reports_sent (sent_at);
	CREATE INDEX reports_sent_domain ON reports_sent (kind, domain, end_at)`,
	// 5: aliases, one row per target.
	`CREATE TABLE aliases (
		address TEXT COLLATE "C" NOT NULL,
		target  TEXT COLLATE "C" NOT NULL,
		domain  TEXT COLLATE "C" NOT NULL,
		PRIMARY KEY (address, target)
	);
	CREATE INDEX aliases_domain ON aliases (domain, address)`,
	// 6 (PostgreSQL only, from here the two backends' numbers part): the rate counters that
	// nodes share (counter.go), one GCRA time per key, in Unix nanoseconds.
	`CREATE TABLE rate_counters (key TEXT COLLATE "C" PRIMARY KEY, tat BIGINT NOT NULL)`,
	// 7: the admin web interface's logins (admins.go); sqlite's 6.
	`CREATE TABLE admins (name TEXT COLLATE "C" PRIMARY KEY, password TEXT NOT NULL, created_at BIGINT NOT NULL)`,
	// 8: the accounts disabled (disabled.go); sqlite's 7.
	`CREATE TABLE disabled_users (address TEXT COLLATE "C" PRIMARY KEY REFERENCES users (address) ON DELETE CASCADE)`,
}

const (
	// migrationLock is the advisory lock key of the migrations (any constant; "tern" in ASCII).
	migrationLock = 0x7465726e

	// opTimeout bounds every operation, waiting for a pooled connection included: with the
	// server down, a RCPT or AUTH gets its temporary failure in this time, not the session's.
	opTimeout = 5 * time.Second

	// connectTimeout bounds one connection attempt.
	connectTimeout = 3 * time.Second

	// maxConns caps the pool, as in package sqlite; PostgreSQL's default max_connections is
	// 100, shared by every node.
	maxConns = 8
)

// Store is an accounts.Store in a PostgreSQL database. It is safe for concurrent use, and other
// processes and nodes may use the same database at once.
type Store struct {
	pool *pgxpool.Pool

	// decoy makes Verify for an unknown address cost as much as for a known one.
	decoy accounts.Decoy
}

var _ accounts.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user:pass@host:port/db?...) and brings its
// schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's error may quote the URL, password included.
		return nil, errors.New("postgres: malformed connection URL")
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx, migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// migrate applies the steps the database has not run yet, and records the new version, in one
// transaction under the advisory lock.
func (s *Store) migrate(ctx context.Context, steps []string) error {
	ctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("lock for migration: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tern_schema (version INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("schema version table: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM tern_schema`).Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO tern_schema (version) VALUES (0)`); err != nil {
				return fmt.Errorf("schema version: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read schema version: %w", err)
		}
		if version > len(steps) {
			return fmt.Errorf("%w: database has version %d, this program knows up to %d",
				ErrSchemaTooNew, version, len(steps))
		}
		for i := version; i < len(steps); i++ {
			if _, err := tx.Exec(ctx, steps[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE tern_schema SET version = $1`, len(steps)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
		return nil
	})
}

// bound limits ctx to opTimeout.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// inTx runs f in a transaction, bounded by opTimeout, and commits it if f returns nil.
func (s *Store) inTx(ctx context.Context, f func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return f(ctx, tx) })
}

// oneRow returns nil if tag changed a row and errNone, wrapped with what, if it changed none.
func oneRow(tag pgconn.CommandTag, what string, errNone error) error {
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", errNone, what)
	}
	return nil
}

// writePassword hashes password (slow: outside the transaction) and runs write with the
// normalized address and the hash in a transaction, then stores secrets with it.
func (s *Store) writePassword(ctx context.Context, addr, password string, secrets []accounts.Secret,
	write func(ctx context.Context, tx pgx.Tx, addr, hash string) error) error {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := write(ctx, tx, addr, hash); err != nil {
			return err
		}
		for _, sec := range secrets {
			if _, err := tx.Exec(ctx, `INSERT INTO secrets (address, kind, secret) VALUES ($1, $2, $3)`,
				addr, sec.Kind, sec.Value); err != nil {
				return fmt.Errorf("postgres: store %s secret of %s: %w", sec.Kind, addr, err)
			}
		}
		return nil
	})
}

// Add implements accounts.Store.
func (s *Store) Add(ctx context.Context, addr, password string, secrets ...accounts.Secret) error {
	return s.writePassword(ctx, addr, password, secrets, func(ctx context.Context, tx pgx.Tx, addr, hash string) error {
		// ON CONFLICT DO NOTHING tells "already there" in one statement, with no
		// check-then-insert race with another node.
		tag, err := tx.Exec(ctx,
			`INSERT INTO users (address, password, created_at) VALUES ($1, $2, $3) ON CONFLICT (address) DO NOTHING`,
			addr, hash, time.Now().Unix())
		if err != nil {
			return fmt.Errorf("postgres: add %s: %w", addr, err)
		}
		return oneRow(tag, addr, accounts.ErrExists)
	})
}

// Delete implements accounts.Store. The account's secrets go with it (ON DELETE CASCADE).
func (s *Store) Delete(ctx context.Context, addr string) error {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE address = $1`, addr)
	if err != nil {
		return fmt.Errorf("postgres: delete %s: %w", addr, err)
	}
	return oneRow(tag, addr, accounts.ErrNotFound)
}

// SetPassword implements accounts.Store.
func (s *Store) SetPassword(ctx context.Context, addr, password string, secrets ...accounts.Secret) error {
	return s.writePassword(ctx, addr, password, secrets, func(ctx context.Context, tx pgx.Tx, addr, hash string) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET password = $1 WHERE address = $2`, hash, addr)
		if err != nil {
			return fmt.Errorf("postgres: set password %s: %w", addr, err)
		}
		if err := oneRow(tag, addr, accounts.ErrNotFound); err != nil {
			return err
		}
		// Secrets of the old password must not outlive it.
		if _, err := tx.Exec(ctx, `DELETE FROM secrets WHERE address = $1`, addr); err != nil {
			return fmt.Errorf("postgres: set password %s: %w", addr, err)
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
	ctx, cancel := bound(ctx)
	defer cancel()
	var secret []byte
	err = s.pool.QueryRow(ctx, `SELECT secret FROM secrets WHERE address = $1 AND kind = $2
		AND NOT EXISTS (SELECT 1 FROM disabled_users WHERE address = $1)`, addr, kind).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s has no %s secret", accounts.ErrNotFound, addr, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: secret %s %s: %w", addr, kind, err)
	}
	return secret, nil
}

// List implements accounts.Store, in byte order (the "C" collation).
func (s *Store) List(ctx context.Context) ([]string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT address FROM users ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	if addrs == nil {
		addrs = []string{}
	}
	return addrs, nil
}

// Exists implements accounts.Store.
func (s *Store) Exists(ctx context.Context, addr string) (bool, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return false, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var found bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE address = $1)`, addr).Scan(&found); err != nil {
		return false, fmt.Errorf("postgres: exists %s: %w", addr, err)
	}
	return found, nil
}

// Verify implements accounts.Store.
func (s *Store) Verify(ctx context.Context, addr, password string) (bool, error) {
	addr, err := accounts.NormalizeAddress(addr)
	if err != nil {
		return false, err
	}
	qctx, cancel := bound(ctx)
	defer cancel()
	var encoded string
	err = s.pool.QueryRow(qctx, `SELECT password FROM users WHERE address = $1
		AND NOT EXISTS (SELECT 1 FROM disabled_users WHERE address = $1)`, addr).Scan(&encoded)
	found := !errors.Is(err, pgx.ErrNoRows)
	if found && err != nil {
		return false, fmt.Errorf("postgres: verify %s: %w", addr, err)
	}
	ok, err := s.decoy.Verify(encoded, found, password)
	if err != nil {
		return false, fmt.Errorf("postgres: verify %s: %w", addr, err)
	}
	return ok, nil
}

// Close implements accounts.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
