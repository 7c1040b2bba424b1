package safeio

import (
	"errors"
	"testing"
)

func TestParseDirty(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"MemTotal:        8000000 kB\nDirty:              1200 kB\nWriteback:            40 kB\nAnonPages: 1 kB\n", 1240 << 10, false},
		{"Dirty: 0 kB\nWriteback: 0 kB\n", 0, false},
		{"Dirty: 5 kB\n", 0, true},
		{"Dirty: 5 MB\nWriteback: 0 kB\n", 0, true},
		{"Dirty: x kB\nWriteback: 0 kB\n", 0, true},
		{"", 0, true},
	} {
		got, err := parseDirty([]byte(c.in))
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("parseDirty(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
	if _, err := DirtyBytes(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DirtyBytes: %v", err)
	}
}
