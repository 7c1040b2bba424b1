package queue

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/testutil"
)

var errInjected = errors.New("injected fdatasync failure")

// syncFailFS is the operating system's file system, except that the fdatasync of a log segment
// fails when asked to: the next n of them (failNext), or every one while failAll is set. The
// data written stays in the page cache, as after a real failed flush whose pages were not
// dropped, so a reopen sees records that the queue was told were not durable.
type syncFailFS struct {
	safeio.FS
	failNext atomic.Int32
	failAll  atomic.Bool
	failed   atomic.Int32 // fdatasyncs failed so far
}

func newSyncFailFS() *syncFailFS { return &syncFailFS{FS: safeio.OS} }

func (f *syncFailFS) OpenFile(name string, flag int, perm fs.FileMode) (safeio.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil || filepath.Base(filepath.Dir(name)) != "log" {
		return file, err
	}
	return syncFailFile{file, f}, nil
}

type syncFailFile struct {
	safeio.File
	fs *syncFailFS
}

func (f syncFailFile) Datasync() error {
	if f.fs.failAll.Load() || f.fs.failNext.Add(-1) >= 0 {
		f.fs.failed.Add(1)
		return errInjected
	}
	f.fs.failNext.Store(0)
	return f.File.Datasync()
}

// TestFailedSyncLeavesNoHalfMessage: a Commit whose fdatasync fails answers an error (the
// session says 451), and the message leaves nothing that recovery reports as lost: with the
// refusal made durable it is gone for good; without, it comes back whole (a duplicate of a
// message the client will send again) or not at all.
func TestFailedSyncLeavesNoHalfMessage(t *testing.T) {
	tests := []struct {
		name     string
		bodySize int  // above InlineMax: a body file of its own
		always   bool // every fdatasync of the log fails until the fault is removed
		// gone: the refused message must not be queued after the restart.
		gone bool
	}{
		{name: "body file, one failed flush", bodySize: 5000, gone: true},
		{name: "inline body, one failed flush", bodySize: 500, gone: true},
		{name: "body file, the refusal cannot be made durable", bodySize: 5000, always: true},
		{name: "inline body, the refusal cannot be made durable", bodySize: 500, always: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fsys := newSyncFailFS()
			opts := testOpts(newFake(nil))
			opts.InlineMax = 2048
			opts.FS = fsys
			q, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			before := commitMsg(t, q, newEnv("a@example.test"), bodyFor(1, tc.bodySize))
			if tc.always {
				fsys.failAll.Store(true)
			} else {
				fsys.failNext.Store(1)
			}
			w, err := q.NewMessage()
			if err != nil {
				t.Fatal(err)
			}
			body := bodyFor(2, tc.bodySize)
			w.Write(body)
			if err := w.Commit(context.Background(), newEnv("b@example.test")); err == nil {
				t.Fatal("Commit succeeded although its fdatasync failed")
			}
			refused := w.ID()
			fsys.failAll.Store(false)
			after := commitMsg(t, q, newEnv("c@example.test"), bodyFor(3, tc.bodySize))
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			if fsys.failed.Load() == 0 {
				t.Fatal("no fdatasync failed")
			}

			var logs testutil.SyncBuffer
			opts.Logger = debugLogger(&logs)
			opts.FS = nil
			q2 := openQueue(t, dir, opts)
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("recovery logged an error:\n%s", logs.String())
			}
			for i, id := range []string{before, after} {
				if got := readBody(t, q2, id); !bytes.Equal(got, bodyFor(i*2+1, tc.bodySize)) {
					t.Errorf("message %s has a different body", id)
				}
			}
			q2.mu.Lock()
			e := q2.entries[refused]
			q2.mu.Unlock()
			switch {
			case e != nil && tc.gone:
				t.Errorf("the refused message is queued after the restart")
			case e != nil && !bytes.Equal(readBody(t, q2, refused), body):
				t.Errorf("the refused message came back with a different body")
			}
		})
	}
}

// TestFailedSyncOfReport: when the record that queues a bounce cannot be made durable, the
// recipient's failure is not recorded either: it stays pending and is tried again, and the
// sender ends up with exactly one bounce.
func TestFailedSyncOfReport(t *testing.T) {
	dir := t.TempDir()
	fsys := newSyncFailFS()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	fake := newFake(func(_ context.Context, addr string, n int) error {
		if addr == "sender@example.org" {
			return nil // the bounce
		}
		if n == 1 {
			entered <- struct{}{}
			<-release
		}
		return &delivery.Error{Permanent: true, Code: 550, Enh: "1.1", Msg: "User unknown"}
	})
	opts := testOpts(fake)
	opts.FS = fsys
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv("gone@example.test")
	id := commitMsg(t, q, env, []byte("Subject: hi\r\n\r\nhello\r\n"))
	runQueue(t, q)
	<-entered
	fsys.failNext.Store(1) // the flush of the bounce
	close(release)
	waitFor(t, "the attempt to end", func() bool { it, err := q.Show(id); return err != nil || !it.Busy })
	if fsys.failed.Load() != 1 {
		t.Fatalf("%d fdatasyncs failed, want 1", fsys.failed.Load())
	}
	if it, err := q.Show(id); err != nil || it.Envelope.Rcpts[0].Status != envelope.Pending {
		t.Errorf("the recipient is not pending although its bounce could not be queued: %+v, %v", it, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	opts.FS = nil
	q2 := openQueue(t, dir, opts)
	if reps := reportsTo(t, q2, "sender@example.org"); len(reps) != 0 {
		t.Errorf("reports after the restart: %v, want none yet", reps)
	}
	if it, err := q2.Show(id); err != nil || it.Envelope.Rcpts[0].Status != envelope.Pending {
		t.Fatalf("after the restart: %+v, %v; want pending", it, err)
	}
	q2.FlushAll()
	runQueue(t, q2)
	waitFor(t, "the bounce delivered", func() bool { return q2.Len() == 0 })
	var bounces int
	for _, c := range fake.allCalls() {
		if c.env.From == "" && c.err == nil {
			bounces++
		}
	}
	if bounces != 1 {
		t.Errorf("%d bounces delivered, want 1", bounces)
	}
}
