package tlsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tern-mail/tern/internal/safeio"
)

// pendingSuffix names the files of a pair being written; see recoverPending.
const pendingSuffix = ".new"

// writePair stores p as dir/cert.pem and dir/key.pem. Both are written in full and synced under
// their .new names, and that is made durable, before either is renamed into place: this is the
// invariant recoverPending relies on to tell an interrupted write from an interrupted rename.
func writePair(dir string, p *pemPair) error {
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	// The key is private (0600); the certificate is public and other local software (an IMAP
	// server, monitoring) may want to read it.
	if err := writeSynced(keyPath+pendingSuffix, p.key, 0o600); err != nil {
		return err
	}
	if err := writeSynced(certPath+pendingSuffix, p.cert, 0o644); err != nil {
		return err
	}
	if err := safeio.SyncDir(dir); err != nil {
		return err
	}
	if err := renameFile(keyPath+pendingSuffix, keyPath); err != nil {
		return err
	}
	if err := renameFile(certPath+pendingSuffix, certPath); err != nil {
		return err
	}
	return safeio.SyncDir(dir)
}

// writeFileAtomic replaces path with b: either the old content or the new one survives a crash.
func writeFileAtomic(path string, b []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b, perm); err != nil {
		return err
	}
	if err := renameFile(tmp, path); err != nil {
		_ = os.Remove(tmp) // Best effort; the rename error is what matters.
		return err
	}
	return safeio.SyncDir(filepath.Dir(path))
}

// writeSynced creates path afresh with exactly mode perm, writes b and fsyncs it.
//
// A file already there (left by a crash) is removed first rather than truncated: truncating
// would keep its mode, possibly world-readable, and would follow a symlink planted in its
// place; O_EXCL does neither.
func writeSynced(path string, b []byte, perm fs.FileMode) (err error) {
	if err := removeFile(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path) // Best effort: never leave a partial key behind.
		}
	}()
	// The umask may have narrowed perm; set it exactly so the certificate stays readable.
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readIfExists reads path, reporting whether it exists.
func readIfExists(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func renameFile(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return nil
}

// removeFile removes path; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
