package maildir

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/testutil"
)

// benchBody is a message of size octets in 78-octet lines.
func benchBody(size int) string {
	line := strings.Repeat("x", 76) + "\r\n"
	return strings.Repeat(line, size/len(line)+1)[:size]
}

// syncCounter counts the fsyncs of the directories it passes on to the OS: the figure that
// group commit lowers, stable where timings on a shared disk are not.
type syncCounter struct {
	safeio.FS
	dirSyncs atomic.Int64
}

func (c *syncCounter) SyncDir(dir string) error {
	c.dirSyncs.Add(1)
	return c.FS.SyncDir(dir)
}

// BenchmarkDeliverParallel delivers 5 KiB messages from 32 goroutines at once (the queue's
// default worker count) into one or four mailboxes: the load under which deliveries share
// fsyncs. Besides the time it reports the CPU time (user+system, which includes the kernel's
// work on the file system) and the directory fsyncs per delivery.
func BenchmarkDeliverParallel(b *testing.B) {
	for _, boxes := range []int{1, 4} {
		b.Run(map[int]string{1: "1mailbox", 4: "4mailboxes"}[boxes], func(b *testing.B) {
			fsys := &syncCounter{FS: safeio.OS}
			d := New(Options{Root: b.TempDir(), Hostname: "bench.example.com", FS: fsys})
			var envs []*envelope.Envelope
			for i := range boxes {
				envs = append(envs, newEnv("alice@example.org", string(rune('a'+i))+"@example.com"))
			}
			body := benchBody(5 << 10)
			var n atomic.Int64
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(16) // 32 goroutines on 2 CPUs
			cpu0, syncs0 := testutil.CPUTime(b), fsys.dirSyncs.Load()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					env := envs[int(n.Add(1))%len(envs)]
					if err := d.Deliver(context.Background(), env, 0, strings.NewReader(body)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			testutil.ReportCPUPerOp(b, cpu0)
			b.ReportMetric(float64(fsys.dirSyncs.Load()-syncs0)/float64(b.N), "dirsyncs/op")
		})
	}
}
