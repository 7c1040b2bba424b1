package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// # The lookup cache
//
// Exists, Resolve and AliasTargets run for every RCPT TO and every local delivery. Each is a read
// transaction, and SQLite begins and ends one with two fcntl locks on the -shm file, which with
// the driver's own costs make a lookup about 5 µs (BENCHMARKS.md, "Account lookups"). So their
// answers are kept, and thrown away as soon as anything commits to the file, from this process
// or another (`tern user`, `tern alias`, the admin web interface).
//
// How a commit is seen is SQLite's own way: in WAL mode a reader learns of commits from the
// wal-index header at the start of the -shm file (https://sqlite.org/walformat.html, "The
// WAL-Index Header"), which every commit rewrites (mxFrame, the frame checksums, the salts when
// the WAL restarts); a read transaction starts by comparing it with the one it saw last. The
// cache reads the same 96 bytes (two copies of the 48-byte header) with one pread, and serves
// an answer only while the header is the one read before the answer was queried. A writer
// updates the second copy, then the first: copies that differ are a commit under way, and then
// the cache is bypassed. No time limit is involved, so an account deleted or an alias changed
// in another process is seen at the next lookup, as without the cache.
//
// The -shm file stays the same file as long as the Store holds one connection open (pin):
// SQLite deletes or truncates it only when a connection gets the file to itself, and an open
// connection in WAL mode holds a shared lock on the database until it closes.
//
// The cache's descriptor of the -shm file is closed after every connection of the Store (see
// close): closing it releases the process's POSIX locks on the file. So a process should not
// close a Store while another Store of it has the same file open (tern opens one per process):
// the other's connections would go on without their locks on the -shm file, unprotected from
// other processes.

const (
	// walHeaderSize is one copy of the wal-index header; the -shm file starts with two.
	walHeaderSize = 48
	// walIsInit is the offset of the header's isInit byte, 1 once the header is valid.
	walIsInit = 12
	// maxCached bounds the answers kept; when full, all are dropped. Lookups of unknown
	// addresses (a dictionary attack) would otherwise grow it without end.
	maxCached = 4096
)

// walHeader is a copy of the wal-index header.
type walHeader [walHeaderSize]byte

// lookupCache keeps the answers of Exists, Resolve and AliasTargets while the database is unchanged.
type lookupCache struct {
	// pin keeps a connection, and so the -shm file, open for the cache's life.
	pin *sql.Conn
	// shm is the -shm file, read-only.
	shm *os.File

	mu sync.Mutex
	// hdr is the header the answers below were read under.
	hdr      walHeader
	exists   map[string]bool
	resolved map[string]resolution
	targets  map[string][]string // AliasTargets
	// hits counts the answers served from the cache, for tests.
	hits int

	closeOnce sync.Once
	closeErr  error
}

// resolution is what Resolve answers.
type resolution struct {
	targets []string
	account bool
}

// openCache makes the lookup cache of db, or returns nil (no cache, every lookup queries) when
// the database is not in WAL mode or its -shm file cannot be read.
func openCache(ctx context.Context, db *sql.DB) (*lookupCache, error) {
	pin, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	var mode, file string
	var version int
	// schema_version reads the database, so that pin has the -shm file open from here on.
	if err := pin.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), pin.Close())
	}
	if err := pin.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&version); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), pin.Close())
	}
	// SQLite names the -shm file after the database's full path as it resolved it (symbolic
	// links followed), which database_list gives.

	if err := pin.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), pin.Close())
	}
	if !strings.EqualFold(mode, "wal") || file == "" {
		return nil, pin.Close()
	}
	shm, err := os.Open(file + "-shm")
	if err != nil {
		return nil, pin.Close()
	}
	return &lookupCache{pin: pin, shm: shm,
		exists: map[string]bool{}, resolved: map[string]resolution{}, targets: map[string][]string{}}, nil
}

// header reads the wal-index header; ok is false while a commit is updating it (or when it
// cannot be read), when nothing may be answered from the cache.
func (c *lookupCache) header() (h walHeader, ok bool) {
	var buf [2 * walHeaderSize]byte
	// ReadAt fails unless it read all of buf: a file shorter than that has no header yet.
	if _, err := c.shm.ReadAt(buf[:], 0); err != nil {
		return h, false
	}
	if !bytes.Equal(buf[:walHeaderSize], buf[walHeaderSize:]) || buf[walIsInit] != 1 {
		return h, false
	}
	copy(h[:], buf[:walHeaderSize])
	return h, true
}

// now drops the answers if the database changed since they were read, under c.mu.
func (c *lookupCache) now(h walHeader) {
	if h != c.hdr || len(c.exists)+len(c.resolved)+len(c.targets) >= maxCached {
		c.hdr = h
		clear(c.exists)
		clear(c.resolved)
		clear(c.targets)
	}
}

// cached returns the answer for key in the map m picks, from the cache while the database is
// unchanged, else from load (and keeps it).
func cached[V any](c *lookupCache, m func(*lookupCache) map[string]V, key string, load func() (V, error)) (V, error) {
	if c == nil {
		return load()
	}
	h, ok := c.header()
	if ok {
		c.mu.Lock()
		c.now(h)
		v, hit := m(c)[key]
		if hit {
			c.hits++
		}
		c.mu.Unlock()
		if hit {
			return v, nil
		}
	}
	// Queried after h was read, the answer is of h or of a later commit; in the latter case
	// the header differs from h by the next lookup, which drops it.
	v, err := load()
	if err == nil && ok {
		c.mu.Lock()
		if c.hdr == h {
			m(c)[key] = v
		}
		c.mu.Unlock()
	}
	return v, err
}

// close closes the database with closeDB, between releasing the pinned connection and closing
// the -shm file. That last is a must: POSIX file locks belong to a process, not to a
// descriptor, and closing any descriptor of a file releases every lock the process holds on it,
// SQLite's on the -shm file included (SQLite keeps its own descriptors open for that reason).
// Like the Store's Close, it may be called again.
func (c *lookupCache) close(closeDB func() error) error {
	if c == nil {
		return closeDB()
	}
	c.closeOnce.Do(func() { c.closeErr = errors.Join(c.pin.Close(), closeDB(), c.shm.Close()) })
	return c.closeErr
}

func existsMap(c *lookupCache) map[string]bool         { return c.exists }
func resolvedMap(c *lookupCache) map[string]resolution { return c.resolved }
func targetsMap(c *lookupCache) map[string][]string    { return c.targets }

// clone gives each caller its own targets.
func (r resolution) clone() resolution {
	r.targets = slices.Clone(r.targets)
	return r
}
