package admin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// Status is what OpStatus reports: the figures that show whether the server gives back what a
// burst of clients (or an attack) took from it. Figures that cannot be read are -1.
type Status struct {
	// Goroutines running in the server process.
	Goroutines int `json:"goroutines"`
	// OpenFiles is the number of open file descriptors (entries of /proc/self/fd, counting the
	// one that lists them): listeners, sessions, queue segments, the account store.
	OpenFiles int `json:"open_files"`
	// RSS is the resident set size in octets (/proc/self/statm). The Go runtime gives freed
	// memory back to the system gradually, so this falls some seconds after the heap does.
	RSS int64 `json:"rss_bytes"`
	// Sessions is the number of SMTP sessions open now.
	Sessions int `json:"sessions"`
	// Queue is the number of messages in the queue.
	Queue int `json:"queue"`
}

// status gathers the figures of the running server.
func status(opts Options) Status {
	st := Status{Goroutines: runtime.NumGoroutine(), Queue: opts.Queue.Len()}
	if opts.Sessions != nil {
		st.Sessions = opts.Sessions()
	}
	var err error
	if st.OpenFiles, err = openFiles(opts.Proc); err != nil {
		opts.Logger.Warn("status: open files", "err", err)
		st.OpenFiles = -1
	}
	if st.RSS, err = residentSize(opts.Proc); err != nil {
		opts.Logger.Warn("status: resident size", "err", err)
		st.RSS = -1
	}
	return st
}

// openFiles counts the entries of proc/fd.
func openFiles(proc string) (int, error) {
	ents, err := os.ReadDir(filepath.Join(proc, "fd"))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// residentSize reads the resident set size from proc/statm (proc(5): sizes in pages, the
// second field resident).
func residentSize(proc string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(proc, "statm"))
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("%s/statm: %q has no resident field", proc, b)
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/statm: %w", proc, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
