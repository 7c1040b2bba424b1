package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/tern-mail/tern/internal/safeio"
)

// written is one message file written and fsynced, on its way into new/: either a file
// without a name, still open (f), or a file under tmp/ (tmp).
type written struct {
	md      string      // the Maildir (or Junk folder) it goes to
	rcpt    string      // the recipient, for the log
	f       safeio.File // the open file without a name, or nil
	tmp     string      // its path in tmp/, or ""
	newPath string      // its path in new/
	size    int64
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
	var dirs []string
	inDir := map[string][]*written{}
	for _, w := range files {
		var err error
		if w.f != nil {
			err = d.link(w)
			w.release()
		} else if err = d.rename(w); err != nil {
			_ = d.fs.Remove(w.tmp) // The rename error is what matters.
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

// release closes w's file without a name, if it has one; if it was not linked, it is gone.
func (w *written) release() {
	if w.f != nil {
		// Its data is durable (fsynced) or not wanted: a failed Close loses nothing.
		_ = w.f.Close()
		w.f = nil
	}
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
