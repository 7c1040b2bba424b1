package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// nearestRank is the percentile of a sorted sample by the rule Histogram follows.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	rank := max(int(math.Ceil(p/100*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

// The histogram's percentiles against a sorted sample: exact below 128 ns, within half a
// bucket (1/128 of the value) above.
func TestPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name   string
		sample []time.Duration
		exact  bool
	}{
		{"1..100ns", seq(100, func(i int) time.Duration { return time.Duration(i + 1) }), true},
		{"one value", []time.Duration{42 * time.Millisecond}, false},
		{"log-uniform 1us..10s", seq(100000, func(int) time.Duration {
			return time.Duration(math.Exp(rng.Float64()*math.Log(1e7)) * 1e3)
		}), false},
		{"bimodal", seq(10001, func(i int) time.Duration {
			if i%10 == 0 {
				return 250*time.Millisecond + time.Duration(rng.IntN(1e6))
			}
			return 2*time.Millisecond + time.Duration(rng.IntN(1e5))
		}), false},
		{"over the range", []time.Duration{time.Hour, 2 * time.Hour, time.Millisecond}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Histogram
			for _, d := range c.sample {
				h.Record(d)
			}
			sorted := slices.Clone(c.sample)
			slices.Sort(sorted)
			for _, p := range []float64{0.1, 50, 90, 99, 99.9, 100} {
				want, got := nearestRank(sorted, p), h.Percentile(p)
				tol := time.Duration(0)
				if !c.exact {
					tol = want / 128
				}
				if want > time.Duration(histMax) && p < 100 {
					tol = want // past histMax only the max is kept exactly
				}
				if diff := got - want; diff < -tol || diff > tol {
					t.Errorf("p%v = %v, want %v (within %v)", p, got, want, tol)
				}
			}
			if s := h.Stats(); s.Count != uint64(len(c.sample)) || s.Max != ms(sorted[len(sorted)-1]) || s.Min != ms(sorted[0]) {
				t.Errorf("Stats %+v: count, min or max wrong", s)
			}
		})
	}
}

func seq(n int, f func(int) time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// Every value lands in a bucket that holds it, the buckets follow each other without gaps,
// and none is wider than 1/64 of its lower bound.
func TestBuckets(t *testing.T) {
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, the one before ends at %d", i, lo, prevHi)
		}
		if lo >= 2*histSub && float64(hi-lo+1) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d, %d] is too wide", i, lo, hi)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if v <= histMax && bucketOf(v) != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, bucketOf(v), i)
			}
		}
		prevHi = hi
	}
	if bucketOf(histMax) >= histBuckets {
		t.Fatalf("histMax falls past the last bucket")
	}
}

// Merging two histograms gives what one histogram of both samples gives; recording more never
// grows a histogram.
func TestMergeAndBoundedSize(t *testing.T) {
	var a, b, all Histogram
	for i := range 20000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.Stats() != all.Stats() {
		t.Errorf("merged %+v, want %+v", m.Stats(), all.Stats())
	}
	if len(all.counts) != histBuckets {
		t.Errorf("%d counters after 20000 records, want %d", len(all.counts), histBuckets)
	}
	var n uint64
	for _, b := range all.Distribution(40) {
		n += b.Count
	}
	if n != all.Count() {
		t.Errorf("the distribution holds %d of %d", n, all.Count())
	}
	if (&Histogram{}).Stats() != (Stats{}) || (&Histogram{}).Percentile(50) != 0 {
		t.Error("an empty histogram is not all zero")
	}
}

// The timeline merges its intervals in pairs when a run outlasts them, keeping every count.
func TestTimelineBounded(t *testing.T) {
	start := time.Unix(1e9, 0)
	tl := newTimeline(start, 100*time.Millisecond)
	const secs = 3600
	for i := range secs * 10 {
		tl.add(start.Add(time.Duration(i)*100*time.Millisecond), i%100 != 0, 1000)
	}
	pts := tl.series(secs * time.Second)
	if len(pts) > timelineMax {
		t.Fatalf("%d points, want at most %d", len(pts), timelineMax)
	}
	var msgs float64
	var errs int
	prev := 0.0
	for _, p := range pts {
		width := p.T - prev
		msgs += p.Rate * width
		errs += p.Errors
		prev = p.T
	}
	if math.Abs(msgs-secs*10*0.99) > 0.5 || errs != secs*10/100 || math.Abs(prev-secs) > 1e-9 {
		t.Errorf("%.1f messages and %d errors up to %vs; want %d, %d, %d", msgs, errs, prev, secs*10*99/100, secs*10/100, secs)
	}
}

// A message is --size octets whatever its number, with a Message-ID of its own and a body no
// server has to unstuff or fold.
func TestMessage(t *testing.T) {
	for _, size := range []int{0, 10, 300, 1000, 5120, 100 << 10} {
		m := newMessage(size, "a@example.test", "b@example.test", "run1", time.Unix(0, 0), 20000)
		ids := map[string]bool{}
		for _, seq := range []int64{1, 999, 20000} {
			var b bytes.Buffer
			var rd msgReader
			rd.reset(m.header(nil, seq), m.body)
			if _, err := rd.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			if size > 300 && len(text) != size || len(text) != m.size() {
				t.Errorf("size %d: message %d is %d octets (size() %d)", size, seq, len(text), m.size())
			}
			_, id, _ := strings.Cut(text, "Message-ID: ")
			id, _, _ = strings.Cut(id, "\r\n")
			ids[id] = true
			for _, line := range strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n") {
				if strings.HasPrefix(line, ".") || len(line) > 998 || strings.ContainsAny(line, "\r\n") {
					t.Fatalf("size %d: bad line %q", size, line)
				}
			}
			if !strings.HasSuffix(text, "\r\n") || !strings.Contains(text, "\r\n\r\n") {
				t.Errorf("size %d: no header/body separation or final CRLF", size)
			}
		}
		if len(ids) != 3 {
			t.Errorf("size %d: Message-IDs %v, want 3 different", size, ids)
		}
	}
}

// Read gives what WriteTo gives.
func TestMsgReaderRead(t *testing.T) {
	var rd msgReader
	rd.reset([]byte("head\r\n\r\n"), []byte("body\r\n"))
	var got []byte
	buf := make([]byte, 3)
	for {
		n, err := rd.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "head\r\n\r\nbody\r\n" {
		t.Errorf("read %q", got)
	}
}
