package crashfs

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/safeio"
)

// tree returns every path under "/" of fsys: a file's content, or "/" for a directory.
func tree(t *testing.T, fsys safeio.FS) map[string]string {
	t.Helper()
	m := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		des, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", dir, err)
		}
		for _, de := range des {
			p := path.Join(dir, de.Name())
			if de.IsDir() {
				m[p] = "/"
				walk(p)
				continue
			}
			b, err := safeio.ReadFile(fsys, p)
			if err != nil {
				t.Fatalf("ReadFile %s: %v", p, err)
			}
			m[p] = string(b)
		}
	}
	walk("/")
	return m
}

// ops are the steps of the model tests, each failing the test on an error.
type ops struct {
	t *testing.T
	f *FS
}

func (o ops) create(p, data string) safeio.File {
	o.t.Helper()
	h, err := o.f.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		o.t.Fatal(err)
	}
	if data != "" {
		o.write(h, data)
	}
	return h
}

func (o ops) write(h safeio.File, data string) {
	o.t.Helper()
	if _, err := h.Write([]byte(data)); err != nil {
		o.t.Fatal(err)
	}
}

func (o ops) check(err error) {
	o.t.Helper()
	if err != nil {
		o.t.Fatal(err)
	}
}

// durable makes the directory and file p (one level down) holding data, all of it durable.
func (o ops) durable(p, data string) safeio.File {
	o.t.Helper()
	o.mkdir(path.Dir(p))
	o.syncDir("/")
	h := o.create(p, data)
	o.sync(h)
	o.syncDir(path.Dir(p))
	return h
}

// renamed makes /tmp/a durable, then renames it to /new/a (as a Maildir delivery does).
func (o ops) renamed() {
	o.t.Helper()
	o.mkdir("/tmp")
	o.mkdir("/new")
	o.syncDir("/")
	o.sync(o.create("/tmp/a", "data"))
	o.syncDir("/tmp")
	o.check(o.f.Rename("/tmp/a", "/new/a"))
}

// unnamed makes /new durable and writes data into a file without a name in it, synced when
// sync is set.
func (o ops) unnamed(data string, sync bool) safeio.File {
	o.t.Helper()
	o.mkdir("/new")
	o.syncDir("/")
	h, err := o.f.CreateUnnamed("/new", 0o600)
	o.check(err)
	o.write(h, data)
	if sync {
		o.sync(h)
	}
	return h
}

func (o ops) mkdir(p string)     { o.t.Helper(); o.check(o.f.Mkdir(p, 0o700)) }
func (o ops) syncDir(p string)   { o.t.Helper(); o.check(o.f.SyncDir(p)) }
func (o ops) sync(h safeio.File) { o.t.Helper(); o.check(h.Sync()) }

// TestModel checks what a crash keeps after each sequence of operations, against the model in
// the package doc.
func TestModel(t *testing.T) {
	tests := []struct {
		name string
		run  func(o ops)
		want map[string]string // after the crash
	}{
		{"written, never synced", func(o ops) {
			o.create("/a", "data")
		}, map[string]string{}},
		{"file synced, name not", func(o ops) {
			o.sync(o.create("/a", "data"))
		}, map[string]string{}},
		{"name synced, file not", func(o ops) {
			o.create("/a", "data")
			o.syncDir("/")
		}, map[string]string{"/a": ""}},
		{"both synced", func(o ops) {
			o.sync(o.create("/a", "data"))
			o.syncDir("/")
		}, map[string]string{"/a": "data"}},
		{"datasync covers what was written before it", func(o ops) {
			h := o.create("/a", "one ")
			o.check(h.Datasync())
			o.syncDir("/")
			o.write(h, "two")
		}, map[string]string{"/a": "one "}},
		{"a sync through another handle counts", func(o ops) {
			o.create("/a", "data")
			o.syncDir("/")
			h, err := o.f.OpenFile("/a", os.O_RDONLY, 0)
			o.check(err)
			o.sync(h)
		}, map[string]string{"/a": "data"}},
		{"truncation not synced", func(o ops) {
			h := o.create("/a", "long data")
			o.sync(h)
			o.syncDir("/")
			o.check(h.Truncate(4))
		}, map[string]string{"/a": "long data"}},
		{"removal not synced", func(o ops) {
			o.sync(o.create("/a", "data"))
			o.syncDir("/")
			o.check(o.f.Remove("/a"))
		}, map[string]string{"/a": "data"}},
		{"removal synced", func(o ops) {
			o.sync(o.create("/a", "data"))
			o.syncDir("/")
			o.check(o.f.Remove("/a"))
			o.syncDir("/")
		}, map[string]string{}},
		{"directory not synced in its parent", func(o ops) {
			o.mkdir("/d")
			o.sync(o.create("/d/a", "data"))
			o.syncDir("/d")
		}, map[string]string{}},
		{"directory synced, its names not", func(o ops) {
			o.mkdir("/d")
			o.syncDir("/")
			o.sync(o.create("/d/a", "data"))
		}, map[string]string{"/d": "/"}},
		{"rename, neither directory synced", func(o ops) {
			o.renamed()
		}, map[string]string{"/tmp": "/", "/new": "/", "/tmp/a": "data"}},
		{"rename, target synced: both names", func(o ops) {
			o.renamed()
			o.syncDir("/new")
		}, map[string]string{"/tmp": "/", "/new": "/", "/tmp/a": "data", "/new/a": "data"}},
		{"rename, source synced: neither name", func(o ops) {
			o.renamed()
			o.syncDir("/tmp")
		}, map[string]string{"/tmp": "/", "/new": "/"}},
		{"rename over a file, target synced", func(o ops) {
			o.sync(o.create("/a", "old"))
			o.syncDir("/")
			o.sync(o.create("/a.tmp", "new"))
			o.check(o.f.Rename("/a.tmp", "/a"))
			o.syncDir("/")
		}, map[string]string{"/a": "new"}},
		{"rename over a file, not synced", func(o ops) {
			o.sync(o.create("/a", "old"))
			o.syncDir("/")
			o.sync(o.create("/a.tmp", "new"))
			o.check(o.f.Rename("/a.tmp", "/a"))
		}, map[string]string{"/a": "old"}},
		{"unnamed file, synced, never linked", func(o ops) {
			o.unnamed("data", true)
			o.syncDir("/new")
		}, map[string]string{"/new": "/"}},
		{"unnamed file linked, directory not synced", func(o ops) {
			o.check(o.f.Link(o.unnamed("data", true), "/new/a"))
		}, map[string]string{"/new": "/"}},
		{"unnamed file linked, directory synced", func(o ops) {
			h := o.unnamed("data", true)
			o.check(o.f.Link(h, "/new/a"))
			o.check(h.Close())
			o.syncDir("/new")
		}, map[string]string{"/new": "/", "/new/a": "data"}},
		{"unnamed file linked, data not synced", func(o ops) {
			o.check(o.f.Link(o.unnamed("data", false), "/new/a"))
			o.syncDir("/new")
		}, map[string]string{"/new": "/", "/new/a": ""}},
		{"syncfs: every file and every name", func(o ops) {
			o.mkdir("/d")
			h := o.create("/d/a", "data")
			o.create("/b", "more")
			o.check(o.f.SyncFS(h))
		}, map[string]string{"/d": "/", "/d/a": "data", "/b": "more"}},
		{"syncfs: an unnamed file's data, linked after", func(o ops) {
			o.mkdir("/new")
			o.syncDir("/")
			h, err := o.f.CreateUnnamed("/new", 0o600)
			o.check(err)
			o.write(h, "data")
			o.check(o.f.SyncFS(h))
			o.check(o.f.Link(h, "/new/a"))
			o.syncDir("/new")
		}, map[string]string{"/new": "/", "/new/a": "data"}},
		{"syncfs: what is written after it is not", func(o ops) {
			h := o.create("/a", "one ")
			o.check(o.f.SyncFS(h))
			o.write(h, "two")
			o.create("/b", "late")
		}, map[string]string{"/a": "one "}},
		{"removed while open, data synced through the handle", func(o ops) {
			h := o.create("/a", "data")
			o.syncDir("/")
			o.check(o.f.Remove("/a"))
			o.sync(h)
		}, map[string]string{"/a": "data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			tc.run(ops{t, f})
			live := tree(t, f)
			after := f.Crash()
			if got := tree(t, after); !maps.Equal(got, tc.want) {
				t.Errorf("after the crash: %q, want %q (before: %q)", got, tc.want, live)
			}
			// What survived is durable: a second crash keeps it all.
			if got := tree(t, after.Crash()); !maps.Equal(got, tc.want) {
				t.Errorf("after a second crash: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLinkErrors checks that Link refuses to replace a name, and files of another FS.
func TestLinkErrors(t *testing.T) {
	f := New()
	o := ops{t, f}
	h := o.unnamed("data", true)
	o.create("/new/a", "old")
	if err := f.Link(h, "/new/a"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link over a file: %v, want EEXIST", err)
	}
	if err := New().Link(h, "/b"); err == nil {
		t.Error("Link of another FS's file succeeded")
	}
	if err := f.Link(h, "/missing/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Link into a missing directory: %v, want ENOENT", err)
	}
	if _, err := f.CreateUnnamed("/missing", 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CreateUnnamed in a missing directory: %v, want ENOENT", err)
	}
	o.check(f.Link(h, "/new/b"))
	if got := tree(t, f); got["/new/b"] != "data" || got["/new/a"] != "old" {
		t.Errorf("live tree %q", got)
	}
}

// TestCrashedFails checks that an FS fails every operation once its power is lost, and that
// steps are numbered and CrashAfter stops right after the given one.
func TestCrashedFails(t *testing.T) {
	f := New()
	f.CrashAfter(3)
	o := ops{t, f}
	h := o.create("/a", "x") // steps 1 (create) and 2 (write)
	if f.Steps() != 2 || f.Down() {
		t.Fatalf("after two steps: Steps %d, Down %v", f.Steps(), f.Down())
	}
	if _, err := h.ReadAt(make([]byte, 1), 0); err != nil { // not a step
		t.Fatal(err)
	}
	o.sync(h) // step 3: happens, then the power goes
	if !f.Down() {
		t.Fatal("not down after step 3")
	}
	calls := map[string]error{}
	calls["write"] = func() error { _, err := h.Write([]byte("y")); return err }()
	calls["read"] = func() error { _, err := h.ReadAt(make([]byte, 1), 0); return err }()
	calls["sync"] = h.Sync()
	calls["datasync"] = h.Datasync()
	calls["truncate"] = h.Truncate(0)
	calls["close"] = h.Close()
	calls["open"] = func() error { _, err := f.OpenFile("/a", os.O_RDONLY, 0); return err }()
	calls["stat"] = func() error { _, err := f.Stat("/a"); return err }()
	calls["readdir"] = func() error { _, err := f.ReadDir("/"); return err }()
	calls["mkdir"] = f.Mkdir("/d", 0o700)
	calls["remove"] = f.Remove("/a")
	calls["rename"] = f.Rename("/a", "/b")
	calls["syncdir"] = f.SyncDir("/")
	for name, err := range calls {
		if !errors.Is(err, ErrCrashed) {
			t.Errorf("%s after the crash: %v, want ErrCrashed", name, err)
		}
	}
	if f.Steps() != 3 {
		t.Errorf("Steps = %d after the crash, want 3", f.Steps())
	}
	// The data was synced, the name never was.
	if got := tree(t, f.Crash()); len(got) != 0 {
		t.Errorf("after the crash: %q", got)
	}

	f = New()
	f.CrashAfter(0)
	if err := f.Mkdir("/d", 0o700); !errors.Is(err, ErrCrashed) {
		t.Errorf("CrashAfter(0): Mkdir gave %v", err)
	}
}

// TestInject checks rules: a failing step does nothing and returns the rule's error; a skipped
// sync reports success and makes nothing durable.
func TestInject(t *testing.T) {
	f := New()
	o := ops{t, f}
	var seen []string
	f.Inject(func(op Op) error {
		seen = append(seen, op.String())
		switch {
		case op.Kind == OpWrite && strings.HasSuffix(op.Path, "full"):
			return syscall.ENOSPC
		case op.Kind == OpDatasync && op.Path == "/bad":
			return syscall.EIO
		case op.Kind == OpSync && op.Path == "/nosync":
			return ErrSkip
		case op.Kind == OpSyncDir && op.Path == "/d":
			return ErrSkip
		case op.Kind == OpMkdir && op.Path == "/e":
			return syscall.EROFS
		case op.Kind == OpWrite && op.Path == "/short":
			return ShortWrite(2, syscall.ENOSPC)
		}
		return nil
	})
	full := o.create("/full", "")
	if _, err := full.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write: %v, want ENOSPC", err)
	}
	bad := o.create("/bad", "data")
	if err := bad.Datasync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("datasync: %v, want EIO", err)
	}
	o.sync(o.create("/nosync", "data"))
	o.mkdir("/d")
	o.sync(o.create("/d/a", "data"))
	o.syncDir("/d")
	if err := f.Mkdir("/e", 0o700); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir: %v, want EROFS", err)
	}
	short := o.create("/short", "")
	if n, err := short.Write([]byte("abcd")); n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("short write: %d, %v; want 2, ENOSPC", n, err)
	}
	o.sync(short)
	o.syncDir("/")
	want := map[string]string{"/full": "", "/bad": "", "/nosync": "", "/d": "/", "/short": "ab"}
	if got := tree(t, f.Crash()); !maps.Equal(got, want) {
		t.Errorf("after the crash: %q, want %q", got, want)
	}
	if !slices.Contains(seen, "#1 open /full") || !slices.Contains(seen, "#2 write /full") {
		t.Errorf("rule saw %q", seen)
	}
}

// TestCrashRandom checks that a random crash keeps everything durable and, of the rest, states
// between nothing and everything, with torn writes and holes among them.
func TestCrashRandom(t *testing.T) {
	kinds := map[string]int{}
	for seed := range uint64(300) {
		f := New()
		o := ops{t, f}
		h := o.durable("/d/log", "durable;")
		o.write(h, "one;")
		o.write(h, "two;")
		o.create("/d/new", "x")
		got := tree(t, f.CrashRandom(rand.New(rand.NewPCG(seed, 1))))
		log := got["/d/log"]
		if !strings.HasPrefix(log, "durable;") {
			t.Fatalf("seed %d: the durable part is gone: %q", seed, log)
		}
		tail := log[len("durable;"):]
		switch {
		case tail == "":
			kinds["nothing"]++
		case tail == "one;two;":
			kinds["everything"]++
		case strings.Contains(tail, "\x00"):
			kinds["zeros"]++
		case strings.HasPrefix("one;two;", tail) || strings.HasPrefix("two;", strings.TrimLeft(tail, "\x00")):
			kinds["torn"]++
		default:
			kinds["other"]++
		}
		if len(tail) > len("one;two;") {
			t.Errorf("seed %d: %q is longer than what was written", seed, log)
		}
		if _, ok := got["/d/new"]; ok {
			kinds["new name"]++
		}
	}
	for _, k := range []string{"nothing", "everything", "zeros", "torn", "new name"} {
		if kinds[k] == 0 {
			t.Errorf("300 random crashes never gave %s: %v", k, kinds)
		}
	}
}

// TestLiveSemantics runs the same operations on the simulation and on the operating system and
// compares what the code would see: errors and contents.
func TestLiveSemantics(t *testing.T) {
	dir := t.TempDir()
	real := safeio.OS
	sim := New()
	type result struct {
		err  string
		data string
	}
	// Each step returns what it read, if anything.
	steps := []struct {
		name string
		do   func(fsys safeio.FS, root string) (string, error)
	}{
		{"mkdir", func(fsys safeio.FS, root string) (string, error) { return "", fsys.Mkdir(root+"/d", 0o700) }},
		{"mkdir again", func(fsys safeio.FS, root string) (string, error) { return "", fsys.Mkdir(root+"/d", 0o700) }},
		{"mkdir under a missing directory", func(fsys safeio.FS, root string) (string, error) {
			return "", fsys.Mkdir(root+"/x/y", 0o700)
		}},
		{"create, write, read back", func(fsys safeio.FS, root string) (string, error) {
			h, err := fsys.OpenFile(root+"/d/a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return "", err
			}
			defer h.Close()
			if _, err := h.Write([]byte("hello world")); err != nil {
				return "", err
			}
			if _, err := h.WriteAt([]byte("W"), 6); err != nil {
				return "", err
			}
			b := make([]byte, 5)
			n, err := h.ReadAt(b, 6)
			return string(b[:n]), err
		}},
		{"exclusive create of an existing file", func(fsys safeio.FS, root string) (string, error) {
			_, err := fsys.OpenFile(root+"/d/a", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			return "", err
		}},
		{"read past the end", func(fsys safeio.FS, root string) (string, error) {
			h, err := safeio.Open(fsys, root+"/d/a")
			if err != nil {
				return "", err
			}
			defer h.Close()
			b := make([]byte, 4)
			n, err := h.ReadAt(b, 9)
			return string(b[:n]), err
		}},
		{"write to a read-only handle", func(fsys safeio.FS, root string) (string, error) {
			h, err := safeio.Open(fsys, root+"/d/a")
			if err != nil {
				return "", err
			}
			defer h.Close()
			_, err = h.Write([]byte("x"))
			return "", err
		}},
		{"append and truncate", func(fsys safeio.FS, root string) (string, error) {
			h, err := fsys.OpenFile(root+"/d/a", os.O_RDWR|os.O_APPEND, 0)
			if err != nil {
				return "", err
			}
			defer h.Close()
			if _, err := h.Write([]byte("!")); err != nil {
				return "", err
			}
			if err := h.Truncate(14); err != nil {
				return "", err
			}
			fi, err := h.Stat()
			if err != nil {
				return "", err
			}
			b, err := safeio.ReadFile(fsys, root+"/d/a")
			return string(b) + "|" + fi.Name() + "|" + string(rune('0'+fi.Size()-10)), err
		}},
		{"stat", func(fsys safeio.FS, root string) (string, error) {
			fi, err := fsys.Stat(root + "/d")
			if err != nil {
				return "", err
			}
			return fi.Name() + " " + fi.Mode().String()[:1], nil
		}},
		{"stat a missing file", func(fsys safeio.FS, root string) (string, error) {
			_, err := fsys.Stat(root + "/d/missing")
			return "", err
		}},
		{"stat through a file", func(fsys safeio.FS, root string) (string, error) {
			_, err := fsys.Stat(root + "/d/a/b")
			return "", err
		}},
		{"rename", func(fsys safeio.FS, root string) (string, error) { return "", fsys.Rename(root+"/d/a", root+"/b") }},
		{"rename a missing file", func(fsys safeio.FS, root string) (string, error) {
			return "", fsys.Rename(root+"/d/a", root+"/c")
		}},
		{"remove a directory that is not empty", func(fsys safeio.FS, root string) (string, error) {
			if err := fsys.Rename(root+"/b", root+"/d/b"); err != nil {
				return "", err
			}
			return "", fsys.Remove(root + "/d")
		}},
		{"readdir", func(fsys safeio.FS, root string) (string, error) {
			if err := fsys.Mkdir(root+"/d/c", 0o700); err != nil {
				return "", err
			}
			des, err := fsys.ReadDir(root + "/d")
			var names []string
			for _, de := range des {
				names = append(names, de.Name()+map[bool]string{true: "/"}[de.IsDir()])
			}
			return strings.Join(names, ","), err
		}},
		{"remove", func(fsys safeio.FS, root string) (string, error) {
			if err := fsys.Remove(root + "/d/b"); err != nil {
				return "", err
			}
			return "", fsys.Remove(root + "/d/b")
		}},
		{"syncdir", func(fsys safeio.FS, root string) (string, error) { return "", fsys.SyncDir(root + "/d") }},
		{"syncdir of a missing directory", func(fsys safeio.FS, root string) (string, error) {
			return "", fsys.SyncDir(root + "/missing")
		}},
		{"a closed handle", func(fsys safeio.FS, root string) (string, error) {
			h, err := fsys.OpenFile(root+"/d/e", os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				return "", err
			}
			h.Close()
			_, err = h.Write([]byte("x"))
			return "", err
		}},
	}
	// errClass reduces an error to what callers test for.
	errClass := func(err error) string {
		for _, c := range []struct {
			target error
			name   string
		}{{fs.ErrNotExist, "not exist"}, {fs.ErrExist, "exist"}, {syscall.ENOTDIR, "not dir"},
			{syscall.ENOTEMPTY, "not empty"}, {syscall.EBADF, "bad fd"}, {fs.ErrClosed, "closed"}, {io.EOF, "EOF"}} {
			if errors.Is(err, c.target) {
				return c.name
			}
		}
		if err != nil {
			return "other: " + err.Error()
		}
		return ""
	}
	for _, s := range steps {
		rd, rerr := s.do(real, dir)
		sd, serr := s.do(sim, "")
		want := result{errClass(rerr), rd}
		got := result{errClass(serr), sd}
		if want != got {
			t.Errorf("%s: simulation gives %+v, the OS %+v", s.name, got, want)
		}
	}
	// The trees match too.
	want := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		if de.IsDir() {
			want[strings.TrimPrefix(p, dir)] = "/"
			return nil
		}
		b, err := os.ReadFile(p)
		want[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, sim); !maps.Equal(got, want) {
		t.Errorf("tree %q, the OS has %q", got, want)
	}
	if s := sim.String(); !strings.Contains(s, "/d/e 0 octets, 0 durable (name not durable)") {
		t.Errorf("String:\n%s", s)
	}
}

// TestAfterStep checks that a snapshot taken after step n is what CrashAfter(n) leaves.
func TestAfterStep(t *testing.T) {
	// Every call fails once the FS has crashed: what counts is the snapshot, not the errors.
	run := func(f *FS) {
		_ = f.Mkdir("/d", 0o700)
		_ = f.SyncDir("/")
		h, err := f.OpenFile("/d/a", os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return // crashed
		}
		_, _ = h.Write([]byte("one"))
		_ = h.Sync()
		_ = f.SyncDir("/d")
		_, _ = h.Write([]byte("two"))
		_ = h.Datasync()
		_ = f.Rename("/d/a", "/b")
		_ = f.SyncDir("/")
		_ = f.SyncDir("/d")
	}
	var snaps []map[string]string
	f := New()
	f.AfterStep(func(op Op, snapshot func(*rand.Rand) *FS) {
		if op.Step != int64(len(snaps)+1) {
			t.Errorf("step %d after %d snapshots", op.Step, len(snaps))
		}
		snaps = append(snaps, tree(t, snapshot(nil)))
	})
	run(f)
	if f.Down() {
		t.Fatal("a snapshot cut the power")
	}
	if got, want := tree(t, f.Snapshot(nil)), snaps[len(snaps)-1]; !maps.Equal(got, want) {
		t.Errorf("Snapshot: %q, want %q", got, want)
	}
	if len(snaps) != 11 {
		t.Fatalf("%d snapshots, want 11", len(snaps))
	}
	for n, snap := range snaps {
		g := New()
		g.CrashAfter(int64(n + 1))
		run(g)
		if want := tree(t, g.Crash()); !maps.Equal(snap, want) {
			t.Errorf("snapshot after step %d: %q, CrashAfter gives %q", n+1, snap, want)
		}
	}
}

// TestRestart checks that a restart keeps everything, and durability with it: what was not
// durable before is lost in a later crash.
func TestRestart(t *testing.T) {
	f := New()
	o := ops{t, f}
	h := o.durable("/d/a", "synced;")
	o.write(h, "not;")
	o.mkdir("/e")
	g := f.Restart()
	if _, err := f.Stat("/d"); !errors.Is(err, ErrCrashed) {
		t.Errorf("the old FS after a restart: %v", err)
	}
	if _, err := h.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
		t.Errorf("an old handle after a restart: %v", err)
	}
	want := map[string]string{"/d": "/", "/d/a": "synced;not;", "/e": "/"}
	if got := tree(t, g); !maps.Equal(got, want) {
		t.Errorf("after the restart: %q, want %q", got, want)
	}
	want = map[string]string{"/d": "/", "/d/a": "synced;"}
	if got := tree(t, g.Crash()); !maps.Equal(got, want) {
		t.Errorf("after a crash after the restart: %q, want %q", got, want)
	}
}

// TestFailedSync checks the "fsyncgate" model: what a failed sync should have made durable no
// later sync makes durable, while reads still see it; a random crash may keep it.
func TestFailedSync(t *testing.T) {
	// failing returns a file "/a" holding "one;" (its name durable) whose sync failed.
	failing := func() (*FS, safeio.File) {
		f := New()
		o := ops{t, f}
		h := o.create("/a", "one;")
		o.syncDir("/")
		f.Inject(func(op Op) error { return errIf(op.Kind == OpDatasync, syscall.EIO) })
		if err := h.Datasync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("datasync: %v", err)
		}
		f.Inject(nil)
		return f, h
	}
	f, h := failing()
	o := ops{t, f}
	o.write(h, "two;")
	o.check(h.Datasync())
	if b, _ := safeio.ReadFile(f, "/a"); string(b) != "one;two;" {
		t.Fatalf("reads see %q", b)
	}
	if got := tree(t, f.Snapshot(nil))["/a"]; got != "\x00\x00\x00\x00two;" {
		t.Fatalf("after a crash: %q, want the failed write lost", got)
	}
	// Before a later sync, a random crash may keep the failed write or not.
	seen := map[string]bool{}
	for seed := range uint64(50) {
		f, _ := failing()
		seen[tree(t, f.CrashRandom(rand.New(rand.NewPCG(seed, 9))))["/a"]] = true
	}
	if !seen[""] || !seen["one;"] {
		t.Errorf("random crashes after a failed sync gave %q, want both nothing and the write", slices.Collect(maps.Keys(seen)))
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// TestFailedSyncFS checks that a failed SyncFS makes nothing durable and loses what it should
// have covered to later syncs, of every file, as a failed fsync does for one.
func TestFailedSyncFS(t *testing.T) {
	f := New()
	o := ops{t, f}
	a := o.create("/a", "one;")
	o.create("/b", "two;")
	o.syncDir("/")
	f.Inject(func(op Op) error { return errIf(op.Kind == OpSyncFS, syscall.EIO) })
	if err := f.SyncFS(a); !errors.Is(err, syscall.EIO) {
		t.Fatalf("syncfs: %v", err)
	}
	f.Inject(nil)
	if got := tree(t, f.Snapshot(nil)); got["/a"] != "" || got["/b"] != "" {
		t.Fatalf("after a crash: %q, want nothing synced", got)
	}
	o.check(f.SyncFS(a))
	if got := tree(t, f.Snapshot(nil)); got["/a"] != "" || got["/b"] != "" {
		t.Fatalf("after a later syncfs and a crash: %q, want the failed writes lost", got)
	}
	if err := New().SyncFS(a); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("syncfs with another FS's file: %v", err)
	}
}
