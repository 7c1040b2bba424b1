package maildir

import (
	"context"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/testutil"
)

// noSyncFS is the operating system's file system with every fsync a no-op: what is left of a
// delivery's cost is its CPU, which the disk's waits would otherwise drown.
type noSyncFS struct{ safeio.FS }

type noSyncFile struct{ safeio.File }

func (noSyncFile) Sync() error     { return nil }
func (noSyncFile) Datasync() error { return nil }

// Fd lets the file be linked (safeio's Link needs the descriptor).
func (f noSyncFile) Fd() uintptr { return f.File.(interface{ Fd() uintptr }).Fd() }

func (n noSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (safeio.File, error) {
	f, err := n.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (n noSyncFS) CreateUnnamed(dir string, perm fs.FileMode) (safeio.File, error) {
	f, err := n.FS.CreateUnnamed(dir, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

// BenchmarkDeliverCPU is BenchmarkDeliverParallel into one mailbox without the fsyncs: the
// CPU cost of a delivery (user and system) with nothing waiting for the disk.
func BenchmarkDeliverCPU(b *testing.B) {
	d := New(Options{Root: b.TempDir(), Hostname: "bench.example.com", FS: noSyncFS{safeio.OS}})
	benchDeliverCPU(b, d)
}

// BenchmarkDeliverCPUTmp is BenchmarkDeliverCPU with every file written in tmp/ and renamed,
// as where O_TMPFILE is not supported.
func BenchmarkDeliverCPUTmp(b *testing.B) {
	d := New(Options{Root: b.TempDir(), Hostname: "bench.example.com", FS: noSyncFS{safeio.OS}})
	d.noUnnamed.Store(true)
	benchDeliverCPU(b, d)
}

func benchDeliverCPU(b *testing.B, d *Deliverer) {
	env := newEnv("alice@example.org", "a@example.com")
	body := benchBody(5 << 10)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu0 := testutil.CPUTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
			if err := d.Deliver(context.Background(), env, 0, strings.NewReader(body)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	testutil.ReportCPUPerOp(b, cpu0)
}

func (noSyncFS) SyncFS(safeio.File) error { return nil }
