package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Snapshot is a consistent image of the queue that a backup copies while the server runs:
// hard links, under Dir, to the log segments and body files as they were at one instant, and
// how much of each segment belongs to that instant.
type Snapshot struct {
	// Dir holds log/ and body/ as the queue's own directory does; the segments in log/ are
	// links to files that may still grow: copy only Sizes of them.
	Dir string `json:"dir"`
	// Sizes are the octets of each segment (by name) written when the snapshot was taken; each
	// ends after a whole batch of records.
	Sizes map[string]int64 `json:"sizes"`
}

// Snapshot links the queue's files into dir (an empty directory on the queue's file system)
// as they are at one instant. Under the queue's lock, which every segment drop, body removal
// and batch accounting takes too, it links the segments and notes their sizes, and stops the
// removal of body files; then, without the lock, it links the body files, and lets the
// removals held meanwhile happen. Every message acknowledged before the call has its record
// within Sizes (Commit returns after the write, which counts the octets under the lock) and its
// body file linked (a body file goes only once its message is finished, and none goes while
// the bodies are linked). Records written later, and body files of sessions still writing, may
// be in it too: a restore replays them, or removes them as orphans. The lock is held for one
// link per segment, whatever the number of messages.
//
// It works on the real file system only (hard links are not part of safeio.FS).
func (q *Queue) Snapshot(dir string) (Snapshot, error) {
	snap := Snapshot{Dir: dir, Sizes: make(map[string]int64)}
	for _, d := range []string{"log", "body"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return snap, fmt.Errorf("queue snapshot: %w", err)
		}
	}
	if err := q.linkSegments(dir, snap.Sizes); err != nil {
		return snap, err
	}
	defer q.endSnapshot()
	des, err := os.ReadDir(q.bodyDir())
	if err != nil {
		return snap, fmt.Errorf("queue snapshot: %w", err)
	}
	for _, de := range des {
		err := os.Link(filepath.Join(q.bodyDir(), de.Name()), filepath.Join(dir, "body", de.Name()))
		// A body file that went meanwhile was a session's whose message was refused: it has
		// no record.
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return snap, fmt.Errorf("queue snapshot: %w", err)
		}
	}
	return snap, nil
}

// linkSegments links every segment into dir/log and notes its size, and holds the removal of
// body files until endSnapshot, all under the lock.
func (q *Queue) linkSegments(dir string, sizes map[string]int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	for _, s := range q.segs {
		name := filepath.Base(s.path)
		if err := os.Link(s.path, filepath.Join(dir, "log", name)); err != nil {
			return fmt.Errorf("queue snapshot: %w", err)
		}
		sizes[name] = s.size
	}
	q.snapshots++
	return nil
}

// endSnapshot ends a snapshot's hold on body removals, and removes those held when it was the
// last one.
func (q *Queue) endSnapshot() {
	q.mu.Lock()
	q.snapshots--
	var kept []string
	if q.snapshots == 0 {
		kept, q.keptBodies = q.keptBodies, nil
	}
	q.mu.Unlock()
	for _, path := range kept {
		q.unlinkBody(path)
	}
}

// removeBody removes a finished message's body file (its final state is durable), or keeps it
// for later while a snapshot links the body files. Called with q.mu held.
func (q *Queue) removeBody(path string) {
	if q.snapshots > 0 {
		q.keptBodies = append(q.keptBodies, path)
		return
	}
	q.unlinkBody(path)
}

func (q *Queue) unlinkBody(path string) {
	if err := q.fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Error("queue: remove body", "path", path, "err", err)
	}
}

// CopyTo copies the snapshot into dst (made, mode 0700) as a queue directory that Open
// replays: each segment up to its size (a segment without one whole, as with the server
// stopped), and each body file, every file and directory fsynced. A body file left there whose
// record is past the sizes is an orphan that Open removes.
func (s Snapshot) CopyTo(dst string) error {
	for _, d := range []string{"log", "body"} {
		src, out := filepath.Join(s.Dir, d), filepath.Join(dst, d)
		if err := os.MkdirAll(out, 0o700); err != nil {
			return fmt.Errorf("queue copy: %w", err)
		}
		des, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("queue copy: %w", err)
		}
		for _, de := range des {
			n, ok := s.Sizes[de.Name()]
			if d != "log" || !ok {
				n = -1
			}
			if err := copyFile(filepath.Join(src, de.Name()), filepath.Join(out, de.Name()), n); err != nil {
				return fmt.Errorf("queue copy: %w", err)
			}
		}
		if err := syncDir(out); err != nil {
			return fmt.Errorf("queue copy: %w", err)
		}
	}
	return syncDir(dst)
}

// copyFile copies the first n octets of src (all of it when n < 0) to a new file dst, fsynced.
func copyFile(src, dst string, n int64) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	var r io.Reader = in
	if n >= 0 {
		r = io.LimitReader(in, n)
	}
	copied, err := io.Copy(out, r)
	if err != nil {
		return err
	}
	if n >= 0 && copied != n {
		return fmt.Errorf("%s: %d octets, want %d", src, copied, n)
	}
	return out.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // read only: the Sync is what counts
	return d.Sync()
}
