package safeio

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
		{"Node 0 MemTotal:  8000000 kB\nNode 0 Dirty:  116 kB\nNode 0 Writeback:  4 kB\nNode 0 WritebackTmp: 0 kB\n", 120 << 10, false},
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

// TestDirtyBytesNodes checks the way round a /proc that shows only processes: the NUMA
// nodes' meminfo in /sys, added up; with neither, ErrUnsupported.
func TestDirtyBytesNodes(t *testing.T) {
	dir := t.TempDir()
	for i, kb := range []string{"100", "28"} {
		node := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.Mkdir(node, 0o700); err != nil {
			t.Fatal(err)
		}
		info := "Node " + strconv.Itoa(i) + " Dirty: " + kb + " kB\nNode " + strconv.Itoa(i) + " Writeback: 0 kB\n"
		if err := os.WriteFile(filepath.Join(node, "meminfo"), []byte(info), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := dirtyBytes(filepath.Join(dir, "no-meminfo"), filepath.Join(dir, "node*", "meminfo"))
	if err != nil || got != 128<<10 {
		t.Errorf("from the nodes: %d, %v; want %d", got, err, 128<<10)
	}
	if _, err := dirtyBytes(filepath.Join(dir, "no-meminfo"), filepath.Join(dir, "none*")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("with neither: %v, want ErrUnsupported", err)
	}
}
