package crashfs

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
)

// The control side of an FS: cutting the power, restarting, snapshots, faults.

// CrashAfter cuts the power right after step n (0: now, before any further step). Until a
// Crash, the operations after it fail with ErrCrashed.
func (f *FS) CrashAfter(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAt = n
	if f.steps >= n {
		f.down = true
	}
}

// Steps returns the number of steps done so far.
func (f *FS) Steps() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.steps
}

// Down reports whether the power is lost (CrashAfter's step was reached, or Crash was called).
func (f *FS) Down() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// Inject installs r (nil: none), replacing the previous rule.
func (f *FS) Inject(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rule = r
}

// AfterStep installs fn (nil: none), called after every step with the FS locked, with the
// step and a function that returns the file system a crash right then would leave (as
// CrashRandom with r, or Crash with r nil), without cutting the power: a test can so take
// many crash points from one run. fn must not call the FS, nor keep snapshot.
func (f *FS) AfterStep(fn func(op Op, snapshot func(r *rand.Rand) *FS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after = fn
}

// Restart kills the processes using f (every later operation on f fails, as after a crash)
// and returns the file system they find when they start again: all of it, since the kernel's
// page cache survives a process's death, but what was not durable is still not durable and a
// later Crash of the returned FS loses it. With CrashAfter it simulates kill -9 at a step,
// then a power loss later: recovery code that trusts what it finds (a directory a killed
// process made but never synced) shows up there. f is left empty.
func (f *FS) Restart() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	g := &FS{root: f.root, crashAt: -1}
	f.root = newDir(0o755)
	return g
}

// Snapshot returns the file system a crash now would leave (as CrashRandom with r, or Crash
// with r nil), without cutting the power.
func (f *FS) Snapshot(r *rand.Rand) *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshot(r)
}

// Crash cuts the power (if CrashAfter has not already) and returns the file system a reboot
// finds: only what was durable.
func (f *FS) Crash() *FS { return f.crash(nil) }

// CrashRandom is Crash, except that the file system found keeps a random part of what was
// not durable (see the package doc), drawn from r.
func (f *FS) CrashRandom(r *rand.Rand) *FS { return f.crash(r) }

func (f *FS) crash(r *rand.Rand) *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	return f.snapshot(r)
}

// snapshot returns what a crash now would leave. Called with f.mu held.
func (f *FS) snapshot(r *rand.Rand) *FS {
	c := cloner{r: r, done: map[*inode]*inode{}}
	return &FS{root: c.clone(f.root), crashAt: -1}
}

// cloner builds the inodes after a crash, once each (a file under two names stays one file).
type cloner struct {
	r    *rand.Rand // nil: keep only what is durable
	done map[*inode]*inode
}

func (c *cloner) clone(n *inode) *inode {
	if m := c.done[n]; m != nil {
		return m
	}
	m := &inode{mode: n.mode}
	c.done[n] = m
	if n.isDir() {
		names := maps.Clone(n.durEntries)
		if c.r != nil {
			for _, ch := range n.dirPending[:c.r.IntN(len(n.dirPending)+1)] {
				if ch.ino == nil {
					delete(names, ch.name)
				} else {
					names[ch.name] = ch.ino
				}
			}
		}
		m.entries = make(map[string]*inode, len(names))
		for k, child := range names {
			m.entries[k] = c.clone(child)
		}
		m.durEntries = maps.Clone(m.entries)
		return m
	}
	m.data = slices.Clone(n.durable)
	if c.r != nil {
		m.data = c.tear(m.data, n.pending)
	}
	m.durable = slices.Clone(m.data)
	return m
}

// tear applies a random part of the changes to data: each write is kept, dropped, cut short,
// or (past the end) left as zeros; each truncation is kept or dropped.
func (c *cloner) tear(data []byte, changes []change) []byte {
	for _, ch := range changes {
		if ch.trunc {
			if c.r.IntN(2) == 0 {
				data = resize(data, ch.off)
			}
			continue
		}
		w := ch.data
		switch c.r.IntN(4) {
		case 0:
			continue
		case 1:
		case 2:
			w = w[:c.r.IntN(len(w)+1)]
		case 3:
			// The size reached the disk, the data did not: zeros, but only past the old end
			// (a file system does not zero data it already had).
			if end := ch.off + int64(len(w)); end > int64(len(data)) {
				data = resize(data, end)
			}
			continue
		}
		data = writeAt(data, w, ch.off)
	}
	return data
}

// resize cuts data to n octets or extends it with zeros.
func resize(data []byte, n int64) []byte {
	if n <= int64(len(data)) {
		return data[:n]
	}
	return append(data, make([]byte, n-int64(len(data)))...)
}

// writeAt writes p into data at off, extending it with zeros as needed.
func writeAt(data, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(data)) {
		data = resize(data, end)
	}
	copy(data[off:], p)
	return data
}

// String lists the file system as the running code sees it, one path a line, marking what a
// crash would not keep: for a test's failure message.
func (f *FS) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	var walk func(dir *inode, p string)
	walk = func(dir *inode, p string) {
		names := make([]string, 0, len(dir.entries))
		for k := range dir.entries {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			n := dir.entries[k]
			cp := path.Join(p, k)
			mark := ""
			if dir.durEntries[k] != n {
				mark = " (name not durable)"
			}
			if n.isDir() {
				fmt.Fprintf(&b, "%s/%s\n", cp, mark)
				walk(n, cp)
				continue
			}
			fmt.Fprintf(&b, "%s %d octets, %d durable%s\n", cp, len(n.data), len(n.durable), mark)
		}
	}
	walk(f.root, "/")
	return b.String()
}
