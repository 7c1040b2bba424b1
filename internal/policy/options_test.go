package policy

import (
	"testing"
	"time"
)

// TestLimitsWithDefaults: unset (zero or negative) limits take their defaults, set ones stay.
func TestLimitsWithDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   AuthLimits
		want [5]time.Duration // MaxFailures (as a count), Window, Block, BaseDelay, MaxDelay
	}{
		{"zero", AuthLimits{}, [5]time.Duration{DefaultAuthMaxFailures, DefaultAuthWindow, DefaultAuthBlock, DefaultAuthBaseDelay, DefaultAuthMaxDelay}},
		{"negative", AuthLimits{MaxFailures: -1, Window: -1, Block: -1, BaseDelay: -1, MaxDelay: -1},
			[5]time.Duration{DefaultAuthMaxFailures, DefaultAuthWindow, DefaultAuthBlock, DefaultAuthBaseDelay, DefaultAuthMaxDelay}},
		{"set", AuthLimits{MaxFailures: 1, Window: 2, Block: 3, BaseDelay: 4, MaxDelay: 5}, [5]time.Duration{1, 2, 3, 4, 5}},
	} {
		t.Run("auth/"+tc.name, func(t *testing.T) {
			l := tc.in.withDefaults()
			if got := [5]time.Duration{time.Duration(l.MaxFailures), l.Window, l.Block, l.BaseDelay, l.MaxDelay}; got != tc.want {
				t.Errorf("withDefaults() = %v, want %v", got, tc.want)
			}
			if l.Now == nil || l.Logger == nil {
				t.Error("withDefaults left the clock or the logger unset")
			}
		})
	}
	for _, tc := range []struct {
		name     string
		in       ETRNLimits
		burst    int
		interval time.Duration
	}{
		{"zero", ETRNLimits{}, DefaultETRNBurst, DefaultETRNInterval},
		{"negative", ETRNLimits{Burst: -1, Interval: -1}, DefaultETRNBurst, DefaultETRNInterval},
		{"set", ETRNLimits{Burst: 1, Interval: time.Second}, 1, time.Second},
	} {
		t.Run("etrn/"+tc.name, func(t *testing.T) {
			l := tc.in.withDefaults()
			if l.Burst != tc.burst || l.Interval != tc.interval || l.Now == nil {
				t.Errorf("withDefaults() = %d, %v (clock set: %v), want %d, %v", l.Burst, l.Interval, l.Now != nil, tc.burst, tc.interval)
			}
		})
	}
}
