package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/tern-mail/tern/internal/safeio"
)

// dirMode keeps mailboxes private to the server's user: mail is personal data.
const dirMode = 0o700

// ensure makes sure md (a Maildir path returned by Path) and its tmp/, new/ and cur/ exist and
// that their directory entries are durable.
func (d *Deliverer) ensure(md string) error {
	if _, ok := d.ready.Load(md); ok {
		return nil
	}
	d.mkdirMu.Lock()
	defer d.mkdirMu.Unlock()
	if _, ok := d.ready.Load(md); ok {
		return nil
	}

	if err := safeio.MkdirAllIn(d.fs, d.root, dirMode); err != nil {
		return err
	}
	// Walk Root/<domain>/<local>/Maildir/{tmp,new,cur}. Each parent is fsynced whether or not
	// we created the child: a directory we find may have been made a moment ago by another
	// process (or another Deliverer) that has not synced it yet, and the message we are about
	// to acknowledge would vanish with it in a crash. This runs once per mailbox per process.
	var below []string // md and its ancestors below Root, outermost first.
	for p := md; p != d.root; p = filepath.Dir(p) {
		if p == filepath.Dir(p) {
			return fmt.Errorf("mailbox %s is not under the mail directory %s", md, d.root)
		}
		below = append([]string{p}, below...)
	}
	dirs := append([]string{d.root}, below...)
	for _, sub := range []string{"tmp", "new", "cur"} {
		dirs = append(dirs, filepath.Join(md, sub))
	}
	for _, dir := range dirs[1:] {
		if err := d.mkdirExisting(dir); err != nil {
			return err
		}
	}
	for _, dir := range dirs[:len(dirs)-3] { // Every parent: Root down to Maildir.
		if err := d.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("syncing the mailbox directory %s: %w", dir, err)
		}
	}
	d.ready.Store(md, struct{}{})
	return nil
}

// mkdirExisting creates dir (mode 0700) unless it already exists as a directory. Its parent
// must exist.
func (d *Deliverer) mkdirExisting(dir string) error {
	err := d.fs.Mkdir(dir, dirMode)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		fi, serr := d.fs.Stat(dir)
		if serr != nil {
			return serr
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory, which a mailbox needs (move it away)", dir)
		}
		return nil
	}
	return err
}

// fileDevice is the file system f is on (its st_dev), or 0 where the FS does not say (tests'
// simulated one, which is a single file system).
func fileDevice(f safeio.File) (uint64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), nil // not a uint64 on every system
	}
	return 0, nil
}
