package smtpserver

import (
	"testing"
	"time"
)

// TestOptionsWithDefaults: unset (zero or negative) fields take their defaults, set ones stay;
// a negative recipient overshoot means none.
func TestOptionsWithDefaults(t *testing.T) {
	type limits struct {
		size, rcpts, errs, overshoot      int
		idle, data, session, shutdownWait time.Duration
		postmaster                        string
	}
	of := func(o Options) limits {
		return limits{int(o.MaxMessageSize), o.MaxRcpts, o.MaxErrors, o.MaxRcptOvershoot,
			o.IdleTimeout, o.DataTimeout, o.SessionTimeout, o.ShutdownWait, o.PostmasterDomain}
	}
	defaults := limits{DefaultMaxMessageSize, DefaultMaxRcpts, DefaultMaxErrors, DefaultRcptOvershoot,
		DefaultIdleTimeout, DefaultDataTimeout, DefaultSessionTimeout, DefaultShutdownWait, "mx.example"}
	for _, tc := range []struct {
		name string
		in   Options
		want limits
	}{
		{"zero", Options{Hostname: "mx.example"}, defaults},
		{"negative", Options{Hostname: "mx.example", MaxMessageSize: -1, MaxRcpts: -1, MaxErrors: -1, MaxRcptOvershoot: -1,
			IdleTimeout: -1, DataTimeout: -1, SessionTimeout: -1, ShutdownWait: -1},
			func() limits { l := defaults; l.overshoot = 0; return l }()},
		{"set", Options{Hostname: "mx.example", PostmasterDomain: "example", MaxMessageSize: 1, MaxRcpts: 2, MaxErrors: 3,
			MaxRcptOvershoot: 4, IdleTimeout: 5, DataTimeout: 6, SessionTimeout: 7, ShutdownWait: 8},
			limits{1, 2, 3, 4, 5, 6, 7, 8, "example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.withDefaults()
			if of(got) != tc.want {
				t.Errorf("withDefaults() = %+v, want %+v", of(got), tc.want)
			}
			if got.Logger == nil {
				t.Error("withDefaults left the logger unset")
			}
		})
	}
}
