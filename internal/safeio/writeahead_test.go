package safeio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// hinted is a File that records the writeback hints it is given.
type hinted struct {
	File
	hints [][2]int64
}

func (h *hinted) startWriteback(off, n int64) { h.hints = append(h.hints, [2]int64{off, n}) }

func TestWriteAheadHints(t *testing.T) {
	f, err := OS.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	h := &hinted{File: f}
	var wa WriteAhead
	w := wa.Reset(h, 100)
	if w != &wa {
		t.Fatal("a file that takes hints is not wrapped")
	}
	chunk := bytes.Repeat([]byte{'x'}, 300<<10) // 300 KiB: the steps fall inside writes
	for range 8 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	// 2,400 KiB from offset 100: a hint once at least a step (1 MiB) has gone through since the
	// last one, after the 4th write and after the 8th, each covering the writes since the last.
	want := [][2]int64{{100, 1200 << 10}, {100 + 1200<<10, 1200 << 10}}
	if len(h.hints) != len(want) || h.hints[0] != want[0] || h.hints[1] != want[1] {
		t.Errorf("hints %v, want %v", h.hints, want)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 8*300<<10 {
		t.Errorf("file size %d, want %d", fi.Size(), 8*300<<10)
	}
}

// TestWriteAheadOS gives real hints: they must not disturb the data.
func TestWriteAheadOS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OS.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var wa WriteAhead
	w := wa.Reset(f, 0)
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*WritebackStep/16+5)
	for p := data; len(p) > 0; p = p[min(len(p), 64<<10):] {
		if _, err := w.Write(p[:min(len(p), 64<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d octets (%v), want the %d written", len(got), err, len(data))
	}
}

// TestWriteAheadPlain: a File that cannot take the hint is written to directly.
func TestWriteAheadPlain(t *testing.T) {
	var wa WriteAhead
	f := plainFile{}
	if w := wa.Reset(f, 0); w != File(f) {
		t.Errorf("Reset gave %T, want the file itself", w)
	}
}

type plainFile struct{ File }
