package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/safeio"
)

// written is one message file written, on its way into new/: a file without a name or, if tmp
// is set, a file under tmp/, open (f) until its batch is done with it.
type written struct {
	md      string      // the Maildir (or Junk folder) it goes to
	rcpt    string      // the recipient, for the log
	f       safeio.File // the file, open until linked or renamed; then nil
	tmp     string      // its path in tmp/, or "" for a file without a name
	newPath string      // its path in new/
	size    int64
	// synced is set once the file's data is durable: by its own fsync, or by its batch
	// (syncFiles). dev is the file system it is on (known when its sync is left to the
	// batch); opened numbers it in the order the Deliverer's files were created.
	synced bool
	dev    uint64
	opened uint64
	// err is the outcome, set by the batch (done): nil once the file is in new/ and new/ is
	// synced.
	err  error
	done bool
}

// batcher is the group commit of deliveries: the renames into new/ and the fsyncs of new/ of
// every delivery that is ready while a batch runs are done together by the next batch. It has
// no goroutine of its own: the first caller that finds no batch running runs one (the
// leader), and hands the lead to a waiting caller when it is done, so that no delivery waits
// for more than the batch running when it arrived and its own.
type batcher struct {
	mu      sync.Mutex
	queue   []*commitReq // waiting for the next batch
	running bool         // a leader is running a batch
}

// commitReq is one caller's files, waiting for a batch.
type commitReq struct {
	files []*written
	wake  chan struct{} // closed when the files have their outcome, or when lead is set
	lead  bool          // the caller runs the next batch
}

// commit moves files from tmp/ into new/ and makes their names durable, together with the
// files of every other delivery that is waiting; on return each file's err is its outcome.
func (d *Deliverer) commit(files []*written) {
	req := &commitReq{files: files, wake: make(chan struct{})}
	b := &d.batch
	b.mu.Lock()
	b.queue = append(b.queue, req)
	if b.running {
		b.mu.Unlock()
		<-req.wake
		if !req.lead {
			return
		}
		b.mu.Lock()
	}
	b.running = true
	reqs := b.queue
	b.queue = nil
	b.mu.Unlock()

	defer func() {
		// Whatever happened in the batch (even a panic), every waiter gets an outcome and
		// the lead passes on: a waiter left behind would hang its queue worker for good.
		for _, r := range reqs {
			for _, w := range r.files {
				if !w.done {
					w.err = errors.New("maildir: delivery batch aborted")
					w.release()
				}
			}
			if r != req {
				close(r.wake)
			}
		}
		b.mu.Lock()
		if len(b.queue) > 0 {
			next := b.queue[0]
			next.lead = true
			close(next.wake)
		} else {
			b.running = false
		}
		b.mu.Unlock()
	}()
	var all []*written
	for _, r := range reqs {
		all = append(all, r.files...)
	}
	d.commitBatch(all)
}

// commitBatch links or renames every file into its new/ and then fsyncs each distinct new/
// once: the names are durable only after that fsync (the Maildir spec's "delivered" point), so
// no file's outcome is nil before it. A file whose link or rename fails, or whose new/ cannot
// be synced, is taken out again and gets the error: the queue retries it, and a retry must
// not leave a duplicate (a reader may have seen it meanwhile, which is harmless).
func (d *Deliverer) commitBatch(files []*written) {
	d.syncFiles(files)
	var dirs []string
	inDir := map[string][]*written{}
	for _, w := range files {
		if w.done {
			continue // its data could not be made durable
		}
		var err error
		if w.tmp == "" {
			err = d.link(w)
			w.release()
		} else {
			w.release()
			if err = d.rename(w); err != nil {
				_ = d.fs.Remove(w.tmp) // The rename error is what matters.
			}
		}
		if err != nil {
			w.err, w.done = err, true
			continue
		}
		dir := filepath.Dir(w.newPath)
		if inDir[dir] == nil {
			dirs = append(dirs, dir)
		}
		inDir[dir] = append(inDir[dir], w)
	}
	for _, dir := range dirs {
		err := d.fs.SyncDir(dir)
		if err != nil {
			err = fmt.Errorf("syncing directory %s: %w", dir, err)
		}
		for _, w := range inDir[dir] {
			if err != nil {
				_ = d.fs.Remove(w.newPath) // Best effort; the sync error is what matters.
			}
			w.err, w.done = err, true
		}
	}
}

// release closes w's file, if still open; a file without a name that was not linked is gone.
func (w *written) release() {
	if w.f != nil {
		// Its data is durable (fsynced) or not wanted: a failed Close loses nothing.
		_ = w.f.Close()
		w.f = nil
	}
}

// fail gives w its outcome err before it went into new/: its file is closed and, if it has a
// name in tmp/, removed (readers ignore tmp/, so a leftover would only waste space until
// someone cleaned it up by hand).
func (w *written) fail(d *Deliverer, err error) {
	w.release()
	if w.tmp != "" {
		_ = d.fs.Remove(w.tmp) // err is what matters
	}
	w.err, w.done = err, true
}

// deferSync reports whether a file just written should be left for its batch to make durable
// (syncFiles) rather than fsynced by its writer: when a batch is running, so that the file
// will wait for the next one anyway, and other files will wait with it (written now by other
// deliveries, or already waiting), so that they can share one syncfs. A file that would wait
// alone is fsynced at once, while the running batch flushes new/: at one session that
// overlap is worth more than the syncfs (which costs more than the fsync of one file).
func (d *Deliverer) deferSync() bool {
	switch {
	case d.sync == syncDeferred:
		return true
	case d.sync == syncEachFile || d.noSyncFS.Load() || !d.calmDisk():
		return false
	}
	b := &d.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running && (len(b.queue) > 0 || d.writing.Load() > 1)
}

// maxDirtyForSyncFS is the most data the system may hold unwritten for a batch to use a
// syncfs: a syncfs waits for all of it, other programs' too, and this bounds that wait (about
// a tenth of a second on a disk that writes 300 MB/s).
const maxDirtyForSyncFS = 32 << 20

// dirtyEvery is how often calmDisk reads the system's unwritten data again.
const dirtyEvery = 50 * time.Millisecond

// calmDisk reports whether the system held little unwritten data (maxDirtyForSyncFS) when last
// looked at, at most dirtyEvery ago. Where it cannot be known, it is not calm.
func (d *Deliverer) calmDisk() bool {
	now := d.now().UnixNano()
	if last := d.calmAt.Load(); now-last < int64(dirtyEvery) && now >= last {
		return d.calm.Load()
	}
	n, err := d.dirty()
	d.calm.Store(err == nil && n <= maxDirtyForSyncFS)
	d.calmAt.Store(now)
	return d.calm.Load()
}

// minSyncFS is the fewest files a batch makes durable with a syncfs; fewer are fsynced one by
// one, which costs less than a syncfs (measured at one session: a syncfs per message was
// 10 % slower than an fsync of the file).
const minSyncFS = 2

// syncFiles makes the data of every file of a batch that its writer left unsynced durable: with
// one syncfs per file system when there are at least minSyncFS of them and the system holds
// little other unwritten data (or when the tests ask for it), each with its own fsync
// otherwise. A file that cannot be made durable gets its error and is done.
//
// A syncfs reports a write error of any file on its file system since the file it is made
// through was opened (safeio.FS.SyncFS), so it goes through the oldest file of the batch on
// that file system, opened before any of the others was written: a failed write of any of
// them cannot go unreported. On ext4 without a journal a syncfs flushes the disk's cache
// before its last wait for the inode blocks it wrote; the flush of new/ after the links, which
// every file of the batch waits for, flushes them too.
func (d *Deliverer) syncFiles(files []*written) {
	var byDev map[uint64][]*written
	n := 0
	for _, w := range files {
		if !w.synced && !w.done {
			if byDev == nil {
				byDev = map[uint64][]*written{}
			}
			byDev[w.dev] = append(byDev[w.dev], w)
			n++
		}
	}
	if n >= minSyncFS && d.calmDisk() || d.sync == syncDeferred && n > 0 {
		for _, ws := range byDev {
			if !d.syncFS(ws) {
				break // unsupported: each file below
			}
		}
	}
	for _, ws := range byDev {
		for _, w := range ws {
			if w.synced || w.done {
				continue
			}
			if err := w.f.Sync(); err != nil {
				w.fail(d, fmt.Errorf("writing %s: %w", w.f.Name(), err))
				continue
			}
			w.synced = true
			d.fsynced.Add(1)
		}
	}
}

// syncFS makes the files ws, all on one file system, durable with one syncfs through the
// oldest of them, or gives each the error. It returns false, having done nothing, if the FS
// cannot syncfs; then no batch tries again.
func (d *Deliverer) syncFS(ws []*written) bool {
	oldest := ws[0]
	for _, w := range ws {
		if w.opened < oldest.opened {
			oldest = w
		}
	}
	err := d.fs.SyncFS(oldest.f)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		d.noSyncFS.Store(true)
		return false
	case err != nil:
		for _, w := range ws {
			w.fail(d, fmt.Errorf("syncing %s: %w", w.f.Name(), err))
		}
	default:
		d.syncFSCalls.Add(1)
		d.bySyncFS.Add(uint64(len(ws)))
		for _, w := range ws {
			w.synced = true
		}
	}
	return true
}

// link gives w's file without a name its name in new/. If new/ was removed behind our back,
// the mailbox is made again; if the name is taken (a clock step back, or another process with
// our pid on a shared Root), w gets a new one: unlike rename, link never replaces a file.
func (d *Deliverer) link(w *written) error {
	const attempts = 3
	var err error
	recreated := false
	for i := 0; i < attempts; i++ {
		err = d.fs.Link(w.f, w.newPath)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, fs.ErrNotExist) && !recreated:
			recreated = true
			d.ready.Delete(w.md)
			if err := d.ensure(w.md); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			w.newPath = d.newName(w.md, w.size)
		default:
			if errors.Is(err, errors.ErrUnsupported) {
				// No /proc to link through: this delivery fails (temporarily) and the
				// next ones are written in tmp/.
				d.noUnnamed.Store(true)
			}
			return err
		}
	}
	return fmt.Errorf("no unique file name in the mailbox after %d attempts: %w", attempts, err)
}

// rename moves w from tmp/ into new/. If new/ was removed behind our back (tmp/ cannot have
// been: the file was just written there), the mailbox is made again and the rename tried once
// more.
func (d *Deliverer) rename(w *written) error {
	err := d.fs.Rename(w.tmp, w.newPath)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d.ready.Delete(w.md)
	if err := d.ensure(w.md); err != nil {
		return err
	}
	return d.fs.Rename(w.tmp, w.newPath)
}
