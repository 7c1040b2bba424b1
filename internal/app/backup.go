package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/queue"
)

// backupManifest names a directory as tern backup's, for tern restore.
const backupManifest = "tern-backup.json"

// snapshotPrefix starts the name of the directory, in the data directory, where the running
// server links the queue's files for a backup (queue.Snapshot); tern backup removes it.
const snapshotPrefix = "backup-snapshot-"

// manifest is what tern-backup.json records.
type manifest struct {
	Time time.Time `json:"time"`
	Data string    `json:"data"` // the data directory backed up
	Mail bool      `json:"mail"` // the Maildirs are in it
	Live bool      `json:"live"` // taken from a running server (queue snapshot) or a stopped one
	// Accounts is where the account store was when it is not in the backup (PostgreSQL: its
	// own backups, pg_dump, keep it); empty when accounts.db is in it.
	Accounts string `json:"accounts,omitempty"`
}

// BackupCommand copies the data directory's state into dir (new, or empty): the account
// database through SQLite's VACUUM INTO (one read transaction: the database at one instant),
// the queue (the running server links its files at one instant, see queue.Snapshot; with no
// server running, under the data directory's lock), the certificates and the other small
// files, and with withMail the Maildirs (message files are whole once in new/ or cur/). It
// works while the server runs and takes mail: every message acknowledged before it started is
// in the copy, queued.
func BackupCommand(ctx context.Context, cfg config.Config, dir string, withMail bool, w io.Writer) error {
	data, err := ExistingData(cfg)
	if err != nil {
		return err
	}
	if err := emptyDir(dir); err != nil {
		return err
	}
	m := manifest{Time: time.Now().UTC(), Data: data, Mail: withMail}

	// The queue first: what it acknowledged is then also in the accounts copy taken after.
	rep, err := admin.Call(ctx, adminPath(data), admin.Request{Op: admin.OpSnapshot})
	switch {
	case err == nil && rep.Error == "" && rep.Snapshot != nil:
		m.Live = true
		err = copySnapshot(data, *rep.Snapshot, filepath.Join(dir, "queue"))
	case err == nil:
		return fmt.Errorf("the running server refused a queue snapshot: %s", cmp.Or(rep.Error, "no snapshot in its reply"))
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		err = copyStoppedQueue(data, filepath.Join(dir, "queue"))
	default:
		return dataError(data, "cannot ask the running server for a queue snapshot", err)
	}
	if err != nil {
		return err
	}
	kind, where, err := config.AccountStore(cfg.Accounts.URL)
	if err != nil {
		return err
	}
	if kind == config.StorePostgres {
		// Shared by several nodes and backed up where it lives: not this node's to copy.
		m.Accounts = "postgresql"
		_, _ = fmt.Fprintln(w, "backup: the account store is on PostgreSQL: it is not copied (back it up with pg_dump)") // informative
	} else if err := sqlite.Backup(ctx, cmp.Or(where, accountsPath(data)), filepath.Join(dir, "accounts.db")); err != nil {
		return dataError(data, "cannot back up the account database", err)
	}
	if err := copyTree(data, dir, func(rel string) bool { return backupSkips(rel, withMail) }); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	// Written last: a backup cut short has none, and tern restore refuses it.
	if err := writeSynced(filepath.Join(dir, backupManifest), append(b, '\n')); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	_, err = fmt.Fprintf(w, "tern: backed up %s to %s (queue %s, Maildirs %s)\n", data, dir,
		map[bool]string{true: "from the running server", false: "with the server stopped"}[m.Live],
		map[bool]string{true: "included", false: "not included: back up " + mailPath(data) + " with your file backup"}[withMail])
	return err
}

// backupSkips reports whether the data directory's entry rel is left out of the generic copy:
// what is copied on its own (the database, the queue), what belongs to a running server (its
// socket and lock), earlier snapshots, and the Maildirs unless asked for (their tmp/ always:
// files being written).
func backupSkips(rel string, withMail bool) bool {
	top, rest, _ := strings.Cut(rel, string(filepath.Separator))
	switch {
	case top == "accounts.db" || strings.HasPrefix(top, "accounts.db-"), top == "queue",
		top == "admin.sock", top == "tern.lock", strings.HasPrefix(top, snapshotPrefix):
		return true
	case top == "mail":
		return !withMail || filepath.Base(rest) == "tmp"
	}
	return false
}

// copySnapshot copies the running server's queue snapshot to dst and removes it.
func copySnapshot(data string, snap queue.Snapshot, dst string) error {
	// Only ever remove what the server made for us, in the data directory.
	if filepath.Dir(snap.Dir) != data || !strings.HasPrefix(filepath.Base(snap.Dir), snapshotPrefix) {
		return fmt.Errorf("the server's queue snapshot %s is not in %s", snap.Dir, data)
	}
	defer func() { _ = os.RemoveAll(snap.Dir) }() // links only: the queue keeps its files
	if err := snap.CopyTo(dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// copyStoppedQueue copies the queue of a stopped server, holding the data directory's lock so
// that no server starts meanwhile.
func copyStoppedQueue(data, dst string) error {
	unlock, err := lockData(data)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(queuePath(data)); errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dst, 0o700) // a server that never ran
	}
	if err := (queue.Snapshot{Dir: queuePath(data)}).CopyTo(dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// takeSnapshot is the running server's answer to admin.OpSnapshot.
func (s *Server) takeSnapshot() (queue.Snapshot, error) {
	dir, err := os.MkdirTemp(s.data, snapshotPrefix)
	if err != nil {
		return queue.Snapshot{}, err
	}
	snap, err := s.q.Snapshot(dir)
	if err != nil {
		_ = os.RemoveAll(dir) // links only
		return snap, err
	}
	return snap, nil
}

// RestoreCommand copies a backup made by tern backup into the data directory, which must not
// exist or be empty (never over a server's state). The server started on it then replays the
// queue: messages still pending are delivered.
func RestoreCommand(cfg config.Config, dir string, w io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dir, backupManifest))
	if err != nil {
		return fmt.Errorf("%s is not a complete tern backup (no %s): %w", dir, backupManifest, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, backupManifest), err)
	}
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return err
	}
	if err := emptyDir(data); err != nil {
		return fmt.Errorf("restore: %w (restore into a new data directory, then point the server at it)", err)
	}
	unlock, err := lockData(data)
	if err != nil {
		return err
	}
	defer unlock()
	if err := copyTree(dir, data, func(rel string) bool { return rel == backupManifest || rel == "tern.lock" }); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	_, err = fmt.Fprintf(w, "tern: restored the backup of %s taken %s into %s\n", m.Data, m.Time.Format(time.RFC3339), data)
	if err == nil && !m.Mail {
		_, err = fmt.Fprintf(w, "tern: the backup has no Maildirs: restore %s from your file backup\n", mailPath(data))
	}
	if err == nil && m.Accounts != "" {
		_, err = fmt.Fprintf(w, "tern: the account store was on %s, not in the backup: point accounts.url at it (or restore its own backup)\n", m.Accounts)
	}
	return err
}

// emptyDir makes dir (mode 0700) unless it exists; an existing one must be empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(des) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// copyTree copies the regular files and directories under src to dst (files 0600, directories
// 0700, each file fsynced), leaving out what skip names (a path relative to src, with what is
// under it).
func copyTree(src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		if skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o700)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile: a Maildir message moved from new/ to cur/ is found again
			}
			if err != nil {
				return err
			}
			return writeSynced(out, b)
		}
		return nil // sockets, links: nothing tern keeps
	})
}

// writeSynced writes a new file, mode 0600, and fsyncs it.
func writeSynced(path string, b []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}
