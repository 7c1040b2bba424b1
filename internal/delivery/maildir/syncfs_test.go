package maildir

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
)

// opCounter is a crashfs.FS that counts the syncs of each kind.
type opCounter struct {
	*crashfs.FS
	mu sync.Mutex
	n  map[crashfs.Kind]int
}

func newOpCounter() *opCounter {
	c := &opCounter{FS: crashfs.New(), n: map[crashfs.Kind]int{}}
	c.Inject(func(op crashfs.Op) error {
		if op.Kind.IsSync() {
			c.mu.Lock()
			c.n[op.Kind]++
			c.mu.Unlock()
		}
		return nil
	})
	return c
}

func (c *opCounter) count(k crashfs.Kind) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// unsupportedSyncFS is an FS whose SyncFS is unsupported, as on a kernel before 5.8.
type unsupportedSyncFS struct{ safeio.FS }

func (unsupportedSyncFS) SyncFS(f safeio.File) error { return errors.ErrUnsupported }

// writeWhileBatchRuns writes a file for each address as a delivery does while another
// delivery's batch is running and another delivery is writing its file.
func writeWhileBatchRuns(t *testing.T, d *Deliverer, addrs ...string) []*written {
	t.Helper()
	d.batch.mu.Lock()
	d.batch.running = true
	d.batch.mu.Unlock()
	d.writing.Add(1)
	defer d.writing.Add(-1)
	var ws []*written
	for _, a := range addrs {
		w, err := d.write(newEnv("s@example.org", a), 0, strings.NewReader(bodyOf(a)))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	d.batch.mu.Lock()
	d.batch.running = false
	d.batch.mu.Unlock()
	return ws
}

// TestSyncUnderLoad checks how files are made durable on their defaults: by their own fsync
// when no batch runs, by the next batch when one does, with one syncfs for two files or more
// and an fsync for one; and never by a syncfs with EachFileSync, or where it is unsupported.
func TestSyncUnderLoad(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		fs          func(*opCounter) safeio.FS
		loaded      []string // written while a batch runs
		idle        []string // written while none does
		dirty       int64    // unwritten data on the system
		syncs, sfss int      // fsyncs of files and syncfs calls
	}{
		{"idle: each file its fsync", Options{}, nil, nil, []string{"a@one.test", "b@one.test"}, 0, 2, 0},
		{"loaded: one syncfs for three files", Options{}, nil, []string{"a@one.test", "b@one.test", "c@two.test"}, nil, 0, 0, 1},
		{"loaded, one file: its fsync", Options{}, nil, []string{"a@one.test"}, nil, 0, 1, 0},
		{"loaded and idle together", Options{}, nil, []string{"a@one.test", "b@one.test"}, []string{"c@two.test"}, 0, 1, 1},
		{"loaded, much unwritten data: fsyncs", Options{}, nil, []string{"a@one.test", "b@one.test", "c@two.test"}, nil, maxDirtyForSyncFS + 1, 3, 0},
		{"EachFileSync", Options{EachFileSync: true}, nil, []string{"a@one.test", "b@one.test", "c@two.test"}, nil, 0, 3, 0},
		{"syncfs unsupported", Options{}, func(c *opCounter) safeio.FS { return unsupportedSyncFS{c} }, []string{"a@one.test", "b@one.test", "c@two.test"}, nil, 0, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newOpCounter()
			opts := tc.opts
			opts.Root, opts.Hostname, opts.FS = plRoot, "h", c
			if tc.fs != nil {
				opts.FS = tc.fs(c)
			}
			d := New(opts)
			d.dirty = func() (int64, error) { return tc.dirty, nil }
			// The mailboxes first: their directory syncs are not counted.
			for _, a := range []string{"a@one.test", "b@one.test", "c@two.test"} {
				md, _ := d.Path(a)
				if err := d.ensure(md); err != nil {
					t.Fatal(err)
				}
			}
			syncs0 := c.count(crashfs.OpSync)
			ws := writeWhileBatchRuns(t, d, tc.loaded...)
			for _, a := range tc.idle {
				w, err := d.write(newEnv("s@example.org", a), 0, strings.NewReader(bodyOf(a)))
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, w)
			}
			d.commit(ws)
			for _, w := range ws {
				if w.err != nil {
					t.Errorf("%s: %v", w.rcpt, w.err)
				}
			}
			if got := c.count(crashfs.OpSync) - syncs0; got != tc.syncs {
				t.Errorf("%d fsyncs of files, want %d", got, tc.syncs)
			}
			if got := c.count(crashfs.OpSyncFS); got != tc.sfss {
				t.Errorf("%d syncfs, want %d", got, tc.sfss)
			}
			want := Stats{Fsynced: uint64(tc.syncs), BySyncFS: uint64(len(ws) - tc.syncs), SyncFS: uint64(tc.sfss)}
			if got := d.Stats(); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			// Whatever the way, every message survives a power loss.
			var jobs []plJob
			var acked []bool
			for _, w := range ws {
				jobs = append(jobs, plJob{addr: w.rcpt, body: bodyOf(w.rcpt)})
				acked = append(acked, true)
			}
			if problems, _ := checkMaildirs(c.Crash(), jobs, acked); len(problems) > 0 {
				t.Errorf("after a crash: %q", problems)
			}
			if tc.fs != nil && d.deferSync() {
				t.Error("syncfs unsupported, and files are still left for it")
			}
		})
	}
}

// bodyOf is the body of the test message to addr.
func bodyOf(addr string) string { return fmt.Sprintf("Subject: to %s\r\n\r\nhello\r\n", addr) }

// TestDeferSync checks when a file is left for its batch: only while a batch runs, and only
// with company (another delivery writing, or files already waiting).
func TestDeferSync(t *testing.T) {
	d := New(Options{Root: plRoot, Hostname: "h", FS: crashfs.New()})
	var dirty int64
	var dirtyErr error
	d.dirty = func() (int64, error) { return dirty, dirtyErr }
	now := time.Unix(1e9, 0)
	d.now = func() time.Time { return now }
	set := func(running bool, waiting int, writers int32) {
		d.batch.mu.Lock()
		d.batch.running, d.batch.queue = running, make([]*commitReq, waiting)
		d.batch.mu.Unlock()
		d.writing.Store(writers)
	}
	for _, c := range []struct {
		running          bool
		waiting, writers int
		want             bool
	}{
		{false, 0, 1, false},
		{false, 0, 5, false}, // the first of them leads the next batch at once
		{true, 0, 1, false},  // alone: its fsync overlaps the running batch
		{true, 0, 2, true},
		{true, 1, 1, true},
	} {
		set(c.running, c.waiting, int32(c.writers))
		if got := d.deferSync(); got != c.want {
			t.Errorf("running %v, %d waiting, %d writing: deferSync = %v, want %v", c.running, c.waiting, c.writers, got, c.want)
		}
	}
	// Much unwritten data, or none known: no file waits for a syncfs; looked at again only
	// after dirtyEvery.
	set(true, 1, 2)
	dirty = maxDirtyForSyncFS + 1
	if !d.deferSync() {
		t.Error("the unwritten data was looked at again at once")
	}
	now = now.Add(dirtyEvery)
	if d.deferSync() {
		t.Errorf("%d octets unwritten: deferSync = true", dirty)
	}
	dirty, dirtyErr = 0, errors.ErrUnsupported
	now = now.Add(dirtyEvery)
	if d.deferSync() {
		t.Error("unwritten data unknown: deferSync = true")
	}
	dirtyErr = nil
	now = now.Add(dirtyEvery)
	if !d.deferSync() {
		t.Error("no unwritten data: deferSync = false")
	}
	set(false, 0, 0)
}

// syncFSCounter counts the SyncFS calls it passes on.
type syncFSCounter struct {
	safeio.FS
	n atomic.Int64
}

func (c *syncFSCounter) SyncFS(f safeio.File) error {
	c.n.Add(1)
	return c.FS.SyncFS(f)
}

// TestSyncFSOnDisk runs concurrent deliveries on the operating system's file system with every
// file left to its batch's syncfs (files without a name, and files in tmp/): the syncfs goes
// through the real descriptors, and every message arrives whole, once.
func TestSyncFSOnDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(safeio.FS) safeio.FS
	}{
		{"unnamed", func(f safeio.FS) safeio.FS { return f }},
		{"tmp", func(f safeio.FS) safeio.FS { return namedOnly{f} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 60
			root := t.TempDir()
			c := &syncFSCounter{FS: safeio.OS}
			d := New(Options{Root: root, Hostname: "h", FS: tc.fs(c)})
			d.sync = syncDeferred
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					body := strings.NewReader(fmt.Sprintf("message %d\r\n", i))
					if err := d.Deliver(context.Background(), newEnv("a@b.c", "bob@example.com"), 0, body); err != nil {
						t.Errorf("Deliver %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			if c.n.Load() == 0 {
				t.Fatal("no syncfs")
			}
			wantEachOnce(t, filepath.Join(root, "example.com", "bob", "Maildir"), n)
			t.Logf("%d deliveries, %d syncfs", n, c.n.Load())
		})
	}
}
