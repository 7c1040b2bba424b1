package safeio

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

func (osFS) SyncFS(f File) error {
	of, ok := f.(interface{ Fd() uintptr })
	if !ok || !syncFSReportsErrors() {
		return &fs.PathError{Op: "syncfs", Path: f.Name(), Err: errors.ErrUnsupported}
	}
	if err := unix.Syncfs(int(of.Fd())); err != nil {
		return &fs.PathError{Op: "syncfs", Path: f.Name(), Err: err}
	}
	return nil
}

// syncFSReportsErrors reports whether the running kernel's syncfs returns the write errors of
// the file system (Linux 5.8 and later): before that it returned 0 whatever happened, and a
// caller would trust data that never reached the disk.
var syncFSReportsErrors = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast reports whether release (uname -r, "6.1.0-13-amd64") is major.minor or later.
func kernelAtLeast(release string, major, minor int) bool {
	num := func(s string) (int, string, bool) {
		end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(s)
		}
		n, err := strconv.Atoi(s[:end])
		return n, s[end:], err == nil
	}
	maj, rest, ok := num(release)
	if !ok {
		return false
	}
	if maj != major {
		return maj > major
	}
	mnr := 0
	if after, found := strings.CutPrefix(rest, "."); found {
		if mnr, _, ok = num(after); !ok {
			return false
		}
	}
	return mnr >= minor
}
