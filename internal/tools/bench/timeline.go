package bench

import (
	"sync"
	"time"
)

// timeline counts what finished in each interval of a run, for the throughput plot. It keeps
// at most timelineMax intervals: when a run outlasts them, neighbours are merged in pairs and
// the interval doubles, so an hour's run costs what a minute's does.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	width  time.Duration
	points []tick
}

// tick is one interval's counts.
type tick struct {
	msgs, errs int
	bytes      int64
}

const timelineMax = 512

func newTimeline(start time.Time, width time.Duration) *timeline {
	return &timeline{start: start, width: width}
}

// add counts a message (ok) or a failure finished at t, with the octets it sent.
func (tl *timeline) add(t time.Time, ok bool, bytes int64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	i := int(max(t.Sub(tl.start), 0) / tl.width)
	for i >= timelineMax {
		tl.halve()
		i = int(max(t.Sub(tl.start), 0) / tl.width)
	}
	for len(tl.points) <= i {
		tl.points = append(tl.points, tick{})
	}
	p := &tl.points[i]
	if ok {
		p.msgs++
		p.bytes += bytes
	} else {
		p.errs++
	}
}

// halve merges the intervals in pairs.
func (tl *timeline) halve() {
	merged := tl.points[:0]
	for i := 0; i < len(tl.points); i += 2 {
		p := tl.points[i]
		if i+1 < len(tl.points) {
			q := tl.points[i+1]
			p.msgs, p.errs, p.bytes = p.msgs+q.msgs, p.errs+q.errs, p.bytes+q.bytes
		}
		merged = append(merged, p)
	}
	tl.points = merged
	tl.width *= 2
}

// Point is the throughput of one interval of a run.
type Point struct {
	// T is the end of the interval, in seconds from the start of the run.
	T float64 `json:"t"`
	// Rate is the messages accepted per second in the interval; MBps their megabytes (10^6
	// octets) per second; Errors the failures that ended in it.
	Rate   float64 `json:"messages_per_second"`
	MBps   float64 `json:"mb_per_second"`
	Errors int     `json:"errors"`
}

// series is the throughput of each interval up to elapsed (the last one's rate over the part
// of it that the run lasted).
func (tl *timeline) series(elapsed time.Duration) []Point {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := make([]Point, 0, len(tl.points))
	for i, p := range tl.points {
		end := time.Duration(i+1) * tl.width
		span := tl.width
		if end > elapsed && i == len(tl.points)-1 {
			span = max(elapsed-time.Duration(i)*tl.width, time.Millisecond)
			end = elapsed
		}
		secs := span.Seconds()
		out = append(out, Point{T: end.Seconds(), Rate: float64(p.msgs) / secs, MBps: float64(p.bytes) / 1e6 / secs, Errors: p.errs})
	}
	return out
}
