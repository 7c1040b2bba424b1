// Package safeio holds the file-system steps that durability rests on: fsyncing a directory so
// that the names created, renamed or removed in it survive a crash (POSIX promises that for a
// file's data on fsync(file), not for its name), and creating directories so that they do too.
// The queue, Maildir delivery and the certificate store all go through it, the first two
// through an FS, so that tests can simulate a power loss under them.
package safeio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// SyncDir fsyncs the directory dir.
func SyncDir(dir string) error { return wrapSync(dir, syncDir(dir)) }

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll is MkdirAllIn on the operating system's file system.
func MkdirAll(dir string, perm fs.FileMode) error { return MkdirAllIn(OS, dir, perm) }

// MkdirAllIn is os.MkdirAll with the given mode that fsyncs the parent of every directory it
// creates, so that files later made durable in dir cannot vanish with it. The first existing
// directory it meets (dir itself, or the ancestor it creates the rest under) has its parent
// fsynced too: a process killed between its mkdir and that fsync, or whose fsync failed, left
// it in the page cache only, and a power loss would take it, with everything acknowledged in
// it since, away. Its other ancestors, and modes, are left alone (above a data directory they
// are the operator's), and so is that parent if we may not open or fsync it (it is the
// operator's too). A path that exists but is not a directory is an error.
func MkdirAllIn(fsys FS, dir string, perm fs.FileMode) error {
	fi, err := fsys.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return syncParent(fsys, dir, true)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err // a *fs.PathError: it names the operation and the path
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllIn(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		// (ErrExist: lost a race with another process, which may die before its fsync.)
		return err
	}
	return syncParent(fsys, dir, false)
}

// syncParent fsyncs the directory holding dir, if it has one. With mayDeny (the parent is
// not ours), a parent we may not open, or whose file system cannot sync it, is skipped.
func syncParent(fsys FS, dir string, mayDeny bool) error {
	parent := filepath.Dir(dir)
	if parent == dir {
		return nil
	}
	err := fsys.SyncDir(parent)
	if mayDeny && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EINVAL)) {
		return nil
	}
	return wrapSync(parent, err)
}

// wrapSync names the directory in a failed directory fsync.
func wrapSync(dir string, err error) error {
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// DirSyncer shares directory fsyncs among goroutines, as group commit does for a log: a caller
// that has just created or renamed an entry in a directory waits for one fsync of it that
// started after its call, and callers arriving while one runs all share the next. Under load
// many deliveries into one Maildir then cost one directory flush instead of one each. The zero
// value is ready to use, on the operating system's file system.
type DirSyncer struct {
	// FS is the file system of the directories; nil means OS.
	FS FS

	mu   sync.Mutex
	dirs map[string]*dirSync
}

// dirSync is the state of one directory: syncs are numbered; at most one runs at a time.
type dirSync struct {
	cond    *sync.Cond
	started uint64 // number of the last sync started
	done    uint64 // number of the last sync finished
	running bool
	lastErr error // result of sync number done
	users   int   // callers holding this entry, so it can be dropped when idle
}

// Sync returns once an fsync of dir that started after the call has finished, with its error.
func (s *DirSyncer) Sync(dir string) error {
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = make(map[string]*dirSync)
	}
	d := s.dirs[dir]
	if d == nil {
		d = &dirSync{cond: sync.NewCond(&s.mu)}
		s.dirs[dir] = d
	}
	d.users++
	// A sync already running may have started before our entry was made: we need the next one.
	target := d.started + 1
	for d.done < target {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		d.started++
		n := d.started
		s.mu.Unlock()
		err := s.syncDir(dir)
		s.mu.Lock()
		d.running = false
		d.done, d.lastErr = n, err
		d.cond.Broadcast()
	}
	// A later sync than ours covers our entry as well, so the newest result is the one to give.
	err := d.lastErr
	if d.users--; d.users == 0 {
		delete(s.dirs, dir)
	}
	s.mu.Unlock()
	return err
}

func (s *DirSyncer) syncDir(dir string) error {
	fsys := s.FS
	if fsys == nil {
		fsys = OS
	}
	return wrapSync(dir, fsys.SyncDir(dir))
}
