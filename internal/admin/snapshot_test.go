package admin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/queue"
)

// TestSnapshot: OpSnapshot is answered by Options.Snapshot on a running server, refused without
// one, and refused by Handle (no server running: tern backup copies under the lock itself).
func TestSnapshot(t *testing.T) {
	want := queue.Snapshot{Dir: "/data/backup-snapshot-1", Sizes: map[string]int64{"v2.0000000001.log": 4096}}
	for _, tc := range []struct {
		name string
		fn   func() (queue.Snapshot, error)
		err  string
	}{
		{"taken", func() (queue.Snapshot, error) { return want, nil }, ""},
		{"failed", func() (queue.Snapshot, error) { return queue.Snapshot{}, errors.New("queue: closed") }, "queue: closed"},
		{"not offered", nil, "takes no queue snapshots"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := snapshot(Options{Snapshot: tc.fn})
			if tc.err != "" {
				if !strings.Contains(rep.Error, tc.err) || rep.Snapshot != nil {
					t.Fatalf("got %+v, want error %q", rep, tc.err)
				}
				return
			}
			if rep.Error != "" || rep.Snapshot == nil || rep.Snapshot.Dir != want.Dir || rep.Snapshot.Sizes["v2.0000000001.log"] != 4096 {
				t.Fatalf("got %+v, want %+v", rep, want)
			}
		})
	}
	if rep := Handle(context.Background(), &fakeQueue{}, Request{Op: OpSnapshot}); !strings.Contains(rep.Error, "not running") {
		t.Errorf("Handle: %+v", rep)
	}
}
