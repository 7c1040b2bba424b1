package admin

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestReload: OpReload is answered by Options.Reload on a running server, its refusal passed
// on word for word; refused without one, and by Handle (no server running).
func TestReload(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func() error
		err  string
	}{
		{"reloaded", func() error { return nil }, ""},
		{"refused", func() error { return errors.New("tern.toml:3: limits.message_size: bad") }, "tern.toml:3: limits.message_size: bad"},
		{"not offered", nil, "this server does not reload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rep := reload(Options{Reload: tc.fn}); rep.Error != tc.err {
				t.Fatalf("got %+v, want error %q", rep, tc.err)
			}
		})
	}
	if rep := Handle(context.Background(), &fakeQueue{}, Request{Op: OpReload}); !strings.Contains(rep.Error, "not running") {
		t.Errorf("Handle: %+v", rep)
	}
}
