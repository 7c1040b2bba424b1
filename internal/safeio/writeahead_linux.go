package safeio

import "golang.org/x/sys/unix"

// startWriteback is a hint: an error (EBADF, ESPIPE, a file system without it) costs nothing
// but the hint, and a write error on the disk is the later fsync's to report.
func (f osFile) startWriteback(off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
