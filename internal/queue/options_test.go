package queue

import (
	"testing"
	"time"
)

// TestOptionsWithDefaults: unset fields take their defaults (a negative DelayWarning is
// "never" and stays), set ones stay, and the inline bound never passes what replay accepts.
func TestOptionsWithDefaults(t *testing.T) {
	type limits struct {
		workers, dest, inline       int
		segment                     int64
		minB, maxB, age, bAge, warn time.Duration
		host                        string
	}
	of := func(o Options) limits {
		return limits{o.Workers, o.DestinationConcurrency, o.InlineMax, o.SegmentSize,
			o.MinBackoff, o.MaxBackoff, o.MaxAge, o.BounceMaxAge, o.DelayWarning, o.Hostname}
	}
	defaults := limits{DefaultWorkers, DefaultWorkers / 2, min(DefaultInlineMax, maxInline), DefaultSegmentSize,
		DefaultMinBackoff, DefaultMaxBackoff, DefaultMaxAge, DefaultBounceMaxAge, DefaultDelayWarning, "localhost"}
	for _, tc := range []struct {
		name string
		in   Options
		want limits
	}{
		{"zero", Options{}, defaults},
		{"negative", Options{Workers: -1, DestinationConcurrency: -1, InlineMax: -1, SegmentSize: -1, MinBackoff: -1,
			MaxBackoff: -1, MaxAge: -1, BounceMaxAge: -1, DelayWarning: -1},
			limits{DefaultWorkers, DefaultWorkers / 2, min(DefaultInlineMax, maxInline), DefaultSegmentSize,
				DefaultMinBackoff, DefaultMaxBackoff, DefaultMaxAge, DefaultBounceMaxAge, -1, "localhost"}},
		{"one worker: one per destination", Options{Workers: 1}, func() limits { l := defaults; l.workers, l.dest = 1, 1; return l }()},
		{"set", Options{Workers: 4, DestinationConcurrency: 3, InlineMax: 100, SegmentSize: 1000, MinBackoff: time.Second,
			MaxBackoff: time.Minute, MaxAge: time.Hour, BounceMaxAge: 2 * time.Hour, DelayWarning: 3 * time.Hour, Hostname: "mx.example"},
			limits{4, 3, 100, 1000, time.Second, time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, "mx.example"}},
		{"inline past what replay takes", Options{InlineMax: maxInline + 1}, func() limits { l := defaults; l.inline = maxInline; return l }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.withDefaults()
			if of(got) != tc.want {
				t.Errorf("withDefaults() = %+v, want %+v", of(got), tc.want)
			}
			if got.Now == nil || got.Logger == nil || got.FS == nil {
				t.Error("withDefaults left the clock, the logger or the file system unset")
			}
		})
	}
}
