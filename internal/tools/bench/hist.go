package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// A Histogram records durations in log-linear buckets, as HdrHistogram does: below 128 ns
// each nanosecond has its own bucket, above it every power of two is split into 64 buckets,
// so a percentile read from it is within 1/128 of the value recorded (half a bucket's width
// around its middle). Its size is fixed (histBuckets counters, about 18 KB) however long the
// run: a load generator that kept every sample would grow by 8 bytes per command.
//
// It is safe for concurrent use; the zero value is empty and ready.
type Histogram struct {
	mu       sync.Mutex
	counts   []uint64 // allocated at the first Record
	n        uint64
	sum      float64 // nanoseconds, for the mean
	min, max int64
}

const (
	histSubBits = 6 // 64 buckets per power of two
	histSub     = 1 << histSubBits
	// histMax is the largest duration told apart (about 18 minutes): longer ones go in the
	// last bucket, and max still says how long the longest was. Commands time out long before.
	histMax     = int64(1)<<40 - 1
	histBuckets = (40-histSubBits)<<histSubBits + 2*histSub
)

// bucketOf is the index of the bucket that holds v (0 <= v <= histMax).
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return shift<<histSubBits + int(v>>shift)
}

// bucketRange is the smallest and largest value that bucket i holds.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i>>histSubBits - 1
	top := int64(i - shift<<histSubBits)
	return top << shift, (top+1)<<shift - 1
}

// Record adds one duration (a negative one counts as 0).
func (h *Histogram) Record(d time.Duration) {
	v := min(max(int64(d), 0), histMax)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || int64(d) < h.min {
		h.min = max(int64(d), 0)
	}
	h.max = max(h.max, int64(d))
	h.n++
	h.sum += float64(max(int64(d), 0))
}

// Merge adds what o recorded to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	counts := append([]uint64(nil), o.counts...)
	n, sum, lo, hi := o.n, o.sum, o.min, o.max
	o.mu.Unlock()
	if n == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range counts {
		h.counts[i] += c
	}
	if h.n == 0 || lo < h.min {
		h.min = lo
	}
	h.max = max(h.max, hi)
	h.n += n
	h.sum += sum
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Percentile returns the duration that p percent (0 < p <= 100) of those recorded do not
// exceed, by the nearest-rank rule (the ceil(p/100*n)-th smallest), read as the middle of its
// bucket and kept within the smallest and largest recorded; 0 when nothing was recorded.
func (h *Histogram) Percentile(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.percentile(p)
}

func (h *Histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bucketRange(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Stats is a summary of a Histogram, in milliseconds for people and JSON readers alike.
type Stats struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Stats summarises h.
func (h *Histogram) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return Stats{}
	}
	return Stats{
		Count: h.n,
		Mean:  ms(time.Duration(h.sum / float64(h.n))),
		Min:   ms(time.Duration(h.min)),
		P50:   ms(h.percentile(50)),
		P90:   ms(h.percentile(90)),
		P99:   ms(h.percentile(99)),
		Max:   ms(time.Duration(h.max)),
	}
}

// Bucket is one bar of a latency distribution: how many durations fell in [Lo, Hi] ms.
type Bucket struct {
	Lo    float64 `json:"lo_ms"`
	Hi    float64 `json:"hi_ms"`
	Count uint64  `json:"count"`
}

// Distribution returns h's counts in at most n bars of equal width on a logarithmic scale
// from the smallest to the largest duration recorded (for plots).
func (h *Histogram) Distribution(n int) []Bucket {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 || n < 1 {
		return nil
	}
	lo, hi := math.Log(float64(max(h.min, 1))), math.Log(float64(max(h.max, 1)))
	if hi-lo < 1e-9 {
		return []Bucket{{Lo: ms(time.Duration(h.min)), Hi: ms(time.Duration(h.max)), Count: h.n}}
	}
	width := (hi - lo) / float64(n)
	out := make([]Bucket, n)
	for i := range out {
		out[i].Lo = math.Exp(lo+float64(i)*width) / 1e6
		out[i].Hi = math.Exp(lo+float64(i+1)*width) / 1e6
	}
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		a, b := bucketRange(i)
		mid := math.Log(float64(max(a+(b-a)/2, 1)))
		j := min(max(int((mid-lo)/width), 0), n-1)
		out[j].Count += c
	}
	return out
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
