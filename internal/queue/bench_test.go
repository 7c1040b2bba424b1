package queue

import (
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/tern-mail/tern/internal/safeio"
)

// benchCommit commits 5 KB messages to a queue without delivery, from the goroutines of
// b.RunParallel (parallel) or from one goroutine, and reports messages per second.
func benchCommit(b *testing.B, parallel bool, sessions int, fsys safeio.FS) {
	benchCommitSize(b, parallel, sessions, fsys, 5<<10)
}

// benchCommitSize is benchCommit with bodies of size octets.
func benchCommitSize(b *testing.B, parallel bool, sessions int, fsys safeio.FS, size int) {
	q, err := Open(b.TempDir(), Options{FS: fsys})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			b.Error(err)
		}
	}()
	body := bodyFor(1, size)
	env := newEnv("a@example.test", "b@example.test")
	commit := func() error {
		w, err := q.NewMessage()
		if err != nil {
			return err
		}
		w.Write(body)
		return w.Commit(context.Background(), env.Clone())
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	if parallel {
		b.SetParallelism(sessions)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := commit(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkCommitSerial is one session: every Commit waits for its own fdatasync.
func BenchmarkCommitSerial(b *testing.B) { benchCommit(b, false, 1, nil) }

// BenchmarkCommitLarge is one session sending 10 MB messages: each body goes to a file of its
// own, fsynced before the record.
func BenchmarkCommitLarge(b *testing.B) { benchCommitSize(b, false, 1, nil, 10<<20) }

// BenchmarkCommitParallel is many sessions sharing fdatasyncs (group commit). The sub-benchmark
// name gives the sessions per CPU (b.SetParallelism).
func BenchmarkCommitParallel(b *testing.B) {
	for _, p := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("sessions-per-cpu=%d", p), func(b *testing.B) { benchCommit(b, true, p, nil) })
	}
}

// BenchmarkCommitNoSync is BenchmarkCommitParallel with fdatasync a no-op: what a commit costs
// the CPU (encoding, framing, the committer's copy), without the disk's flush time, which
// dominates the others and varies with everything else the disk does.
func BenchmarkCommitNoSync(b *testing.B) {
	for _, p := range []int{1, 64} {
		b.Run(fmt.Sprintf("sessions-per-cpu=%d", p), func(b *testing.B) { benchCommit(b, true, p, noSyncFS{safeio.OS}) })
	}
}

// BenchmarkCommitNoSync100K is BenchmarkCommitNoSync/sessions-per-cpu=1 with 100 KB bodies:
// what the commit's copies and allocations cost for a larger message.
func BenchmarkCommitNoSync100K(b *testing.B) {
	b.ReportAllocs()
	benchCommitSize(b, true, 1, noSyncFS{safeio.OS}, 100<<10)
}

// noSyncFS is the operating system's file system with fdatasync a no-op.
type noSyncFS struct{ safeio.FS }

func (f noSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (safeio.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

type noSyncFile struct{ safeio.File }

func (noSyncFile) Datasync() error { return nil }
