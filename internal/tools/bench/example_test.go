package bench_test

import (
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/tools/bench"
)

// A Histogram keeps any number of latencies in a fixed size and reads percentiles from them
// to within 1/128 of the values recorded.
func ExampleHistogram() {
	var h bench.Histogram
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i%1000+1) * time.Microsecond)
	}
	s := h.Stats()
	fmt.Printf("%d recorded: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", s.Count, s.P50, s.P99, s.Max)
	// Output: 100000 recorded: p50 0.50 ms, p99 0.99 ms, max 1.00 ms
}
