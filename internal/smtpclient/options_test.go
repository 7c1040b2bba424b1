package smtpclient

import (
	"reflect"
	"testing"
	"time"
)

// TestOptionsWithDefaults: unset (zero or negative) fields take their defaults, set ones stay.
func TestOptionsWithDefaults(t *testing.T) {
	defaults := Options{LocalName: "localhost", ConnectTimeout: DefaultConnectTimeout, CommandTimeout: DefaultCommandTimeout,
		DataTimeout: DefaultDataTimeout, ChunkSize: 1 << 20,
		MaxReplyLine: DefaultMaxReplyLine, MaxReplyLines: DefaultMaxReplyLines, MaxReplyBytes: DefaultMaxReplyBytes}
	set := Options{LocalName: "client.example", ConnectTimeout: time.Second, CommandTimeout: 2 * time.Second,
		DataTimeout: 3 * time.Second, ChunkSize: 4096, MaxReplyLine: 100, MaxReplyLines: 10, MaxReplyBytes: 1000}
	for _, tc := range []struct {
		name    string
		in, out Options
	}{
		{"zero", Options{}, defaults},
		{"negative", Options{ConnectTimeout: -1, CommandTimeout: -1, DataTimeout: -1, ChunkSize: -1,
			MaxReplyLine: -1, MaxReplyLines: -1, MaxReplyBytes: -1}, defaults},
		{"set", set, set},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.withDefaults(); !reflect.DeepEqual(got, tc.out) {
				t.Errorf("withDefaults() = %+v, want %+v", got, tc.out)
			}
		})
	}
}
