package testutil

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the process's user plus system CPU time so far: what a benchmark reports beside
// its wall time where the work it measures waits on a peer or a disk (b.ReportMetric, as
// "cpu-µs/op").
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPUPerOp reports the CPU time since since (a CPUTime reading) per iteration of b, as
// "cpu-µs/op".
func ReportCPUPerOp(b *testing.B, since time.Duration) {
	b.ReportMetric(float64((CPUTime(b)-since).Microseconds())/float64(b.N), "cpu-µs/op")
}
