package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/testutil"
)

func newEnv(from string, rcpts ...string) *envelope.Envelope {
	env := &envelope.Envelope{ID: "q1", From: from}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: r})
	}
	return env
}

// listDir returns the names in dir, failing the test if it cannot be read.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	return listDirIn(t, safeio.OS, dir)
}

// listDirIn is listDir in fsys.
func listDirIn(t *testing.T, fsys safeio.FS, dir string) []string {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// wantEmpty fails unless dir is empty or does not exist.
func wantEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("reading %s: %v", dir, err)
	}
	if len(ents) != 0 {
		t.Errorf("%s: got %d entries, want none", dir, len(ents))
	}
}

// nameRE matches a delivered file name: Maildir spec unique name plus Dovecot's ,S=.
var nameRE = regexp.MustCompile(`^(\d+)\.M(\d{1,6})P(\d+)Q(\d+)\.([^/:]+),S=(\d+)$`)

// checkDelivered checks that md/new holds exactly one well-formed message and returns its
// content.
func checkDelivered(t *testing.T, md, host string) string {
	t.Helper()
	names := listDir(t, filepath.Join(md, "new"))
	if len(names) != 1 {
		t.Fatalf("new/ holds %d files, want 1: %q", len(names), names)
	}
	wantEmpty(t, filepath.Join(md, "tmp"))
	wantEmpty(t, filepath.Join(md, "cur"))
	m := nameRE.FindStringSubmatch(names[0])
	if m == nil {
		t.Fatalf("file name %q is not a Maildir name", names[0])
	}
	if m[3] != strconv.Itoa(os.Getpid()) {
		t.Errorf("file name %q: pid %s, want %d", names[0], m[3], os.Getpid())
	}
	if m[5] != host {
		t.Errorf("file name %q: host %q, want %q", names[0], m[5], host)
	}
	p := filepath.Join(md, "new", names[0])
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m[6] != strconv.FormatInt(fi.Size(), 10) {
		t.Errorf("file name %q: S=%s, but the file has %d bytes", names[0], m[6], fi.Size())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o, want 600", perm)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name string
		from string
		rcpt string
		body func() io.Reader
		want string // File content.
	}{
		{
			name: "crlf converted",
			from: "alice@example.org", rcpt: "bob@example.com",
			body: func() io.Reader { return strings.NewReader("Subject: hi\r\n\r\nhello\r\n") },
			want: "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\nSubject: hi\n\nhello\n",
		},
		{
			name: "crlf split across reads",
			from: "alice@example.org", rcpt: "bob@example.com",
			body: func() io.Reader { return iotest.OneByteReader(strings.NewReader("a\r\nb\r\n\r\nc\r\n")) },
			want: "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\na\nb\n\nc\n",
		},
		{
			name: "lone cr and lone lf preserved",
			from: "alice@example.org", rcpt: "bob@example.com",
			body: func() io.Reader { return iotest.OneByteReader(strings.NewReader("a\rb\nc\r\r\nd\r")) },
			want: "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\na\rb\nc\r\nd\r",
		},
		{
			name: "null sender",
			from: "", rcpt: "bob@example.com",
			body: func() io.Reader { return strings.NewReader("x\r\n") },
			want: "Return-Path: <>\nDelivered-To: bob@example.com\nx\n",
		},
		{
			name: "empty body",
			from: "a@b.c", rcpt: "bob@example.com",
			body: func() io.Reader { return strings.NewReader("") },
			want: "Return-Path: <a@b.c>\nDelivered-To: bob@example.com\n",
		},
		{
			name: "mixed case address uses lower-case mailbox, original in header",
			from: "a@b.c", rcpt: "Bob@Example.COM",
			body: func() io.Reader { return strings.NewReader("x\r\n") },
			want: "Return-Path: <a@b.c>\nDelivered-To: Bob@Example.COM\nx\n",
		},
		{
			name: "large body",
			from: "a@b.c", rcpt: "bob@example.com",
			body: func() io.Reader { return strings.NewReader(strings.Repeat("0123456789abcdef\r\n", 10000)) },
			want: "Return-Path: <a@b.c>\nDelivered-To: bob@example.com\n" + strings.Repeat("0123456789abcdef\n", 10000),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "mail") // Does not exist yet.
			d := New(Options{Root: root, Hostname: "mx.example.com"})
			if err := d.Deliver(context.Background(), newEnv(tt.from, tt.rcpt), 0, tt.body()); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			md := filepath.Join(root, "example.com", "bob", "Maildir")
			if got := checkDelivered(t, md, "mx.example.com"); got != tt.want {
				t.Errorf("content:\n got %q\nwant %q", got, tt.want)
			}
			for _, dir := range []string{root, filepath.Dir(filepath.Dir(md)), filepath.Dir(md), md,
				filepath.Join(md, "tmp"), filepath.Join(md, "new"), filepath.Join(md, "cur")} {
				fi, err := os.Stat(dir)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm != 0o700 {
					t.Errorf("%s: mode %o, want 700", dir, perm)
				}
			}
		})
	}
}

func TestDeliverSecondRecipient(t *testing.T) {
	root := t.TempDir()
	d := New(Options{Root: root, Hostname: "h"})
	env := newEnv("a@b.c", "one@example.com", "two@example.net")
	if err := d.Deliver(context.Background(), env, 1, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	got := checkDelivered(t, filepath.Join(root, "example.net", "two", "Maildir"), "h")
	if want := "Return-Path: <a@b.c>\nDelivered-To: two@example.net\nx\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	wantEmpty(t, filepath.Join(root, "example.com"))
}

func TestDeliverConcurrent(t *testing.T) {
	const n = 200
	root := t.TempDir()
	// Two Deliverers on one Root, as after a config reload: names must stay unique across them.
	ds := []*Deliverer{New(Options{Root: root, Hostname: "h"}), New(Options{Root: root, Hostname: "h"})}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := strings.NewReader(fmt.Sprintf("message %d\r\n", i))
			errs <- ds[i%2].Deliver(context.Background(), newEnv("a@b.c", "bob@example.com"), 0, body)
		})
	}
	// Meanwhile, other mailboxes in the same domain are created concurrently.
	for i := range 20 {
		wg.Go(func() {
			rcpt := fmt.Sprintf("user%d@example.com", i)
			if err := ds[0].Deliver(context.Background(), newEnv("a@b.c", rcpt), 0, strings.NewReader("x")); err != nil {
				t.Errorf("Deliver to %s: %v", rcpt, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	wantEachOnce(t, filepath.Join(root, "example.com", "bob", "Maildir"), n)
}

// wantEachOnce checks that the Maildir md holds n messages in new/, each with a body line of its
// own (the last line) and none twice, and nothing in tmp/.
func wantEachOnce(t *testing.T, md string, n int) {
	t.Helper()
	names := listDir(t, filepath.Join(md, "new"))
	if len(names) != n {
		t.Fatalf("new/ holds %d files, want %d", len(names), n)
	}
	seen := make(map[string]bool)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(md, "new", name))
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)[strings.LastIndex(strings.TrimSuffix(string(b), "\n"), "\n")+1:]
		if seen[body] {
			t.Errorf("body %q delivered twice", body)
		}
		seen[body] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct bodies, want %d", len(seen), n)
	}
	wantEmpty(t, filepath.Join(md, "tmp"))
}

func TestPath(t *testing.T) {
	const root = "/var/lib/tern/mail"
	d := New(Options{Root: root + "/", Hostname: "h"})
	ok := []struct {
		addr, want string
	}{
		{"bob@example.com", root + "/example.com/bob/Maildir"},
		{"Bob.Smith@EXAMPLE.com", root + "/example.com/bob.smith/Maildir"},
		{`"a@b"@example.com`, root + `/example.com/"a@b"/Maildir`}, // Split at the last '@'.
		{"bob+tag@[192.0.2.1]", root + "/[192.0.2.1]/bob+tag/Maildir"},
		{"jörg@example.com", root + "/example.com/jörg/Maildir"},
	}
	for _, tt := range ok {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := d.Path(tt.addr)
			if err != nil {
				t.Fatalf("Path(%q): %v", tt.addr, err)
			}
			if got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestUnsafeAddress(t *testing.T) {
	tests := []struct {
		name, addr string
	}{
		{"empty", ""},
		{"no at", "postmaster"},
		{"empty local", "@example.com"},
		{"empty domain", "bob@"},
		{"slash in local", "a/b@example.com"},
		{"slash in domain", "bob@example.com/x"},
		{"backslash", `a\b@example.com`},
		{"nul", "a\x00b@example.com"},
		{"tab", "a\tb@example.com"},
		{"newline", "a\nb@example.com"},
		{"del", "a\x7fb@example.com"},
		{"c1 control", "a\u0085b@example.com"},
		{"leading dot local", ".bob@example.com"},
		{"dot local", ".@example.com"},
		{"dotdot local", "..@example.com"},
		{"dotdot inside", "a..b@example.com"},
		{"dotdot domain", "bob@.."},
		{"leading dot domain", "bob@.example.com"},
		{"traversal", "../../etc@example.com"},
		{"invalid utf8", "a\xffb@example.com"},
		{"too long", strings.Repeat("a", 256) + "@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			d := New(Options{Root: root, Hostname: "h"})
			if _, err := d.Path(tt.addr); !delivery.IsPermanent(err) {
				t.Errorf("Path(%q) = %v, want a permanent error", tt.addr, err)
			}
			err := d.Deliver(context.Background(), newEnv("a@b.c", tt.addr), 0, strings.NewReader("x"))
			var de *delivery.Error
			if !errors.As(err, &de) || !de.Permanent || de.Code != 550 || de.Enhanced() != "5.1.1" {
				t.Fatalf("Deliver to %q = %v, want permanent 550 5.1.1", tt.addr, err)
			}
			if strings.Contains(de.Msg, root) {
				t.Errorf("error text %q leaks the path", de.Msg)
			}
			wantEmpty(t, root)
		})
	}
}

func TestBadSender(t *testing.T) {
	root := t.TempDir()
	d := New(Options{Root: root, Hostname: "h"})
	err := d.Deliver(context.Background(), newEnv("a@b.c>\r\nX-Evil: 1", "bob@example.com"), 0, strings.NewReader("x"))
	if !delivery.IsPermanent(err) {
		t.Fatalf("Deliver = %v, want permanent error", err)
	}
	wantEmpty(t, root)
}

// errBody is what the failing body readers return.
var errBody = errors.New("spool read failed")

func TestDeliverFailure(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string) // Makes Root unusable.
		ctx   func() context.Context
		body  io.Reader
		rcpt  int
		want  error // If set, the error must wrap it.
		// unprivileged: the case needs permissions to apply, so it runs as nobody (see
		// testutil.Unprivileged).
		unprivileged bool
	}{
		{
			name: "body fails mid-way",
			body: io.MultiReader(strings.NewReader("Subject: x\r\n\r\npartial"), iotest.ErrReader(errBody)),
			want: errBody,
		},
		{
			name: "body fails at once",
			body: iotest.ErrReader(errBody),
			want: errBody,
		},
		{
			name: "root is a file",
			setup: func(t *testing.T, root string) {
				if err := os.WriteFile(root, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			body: strings.NewReader("x"),
		},
		{
			name:         "read-only root",
			unprivileged: true,
			setup: func(t *testing.T, root string) {
				if err := os.Mkdir(root, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Chmod(root, 0o700) })
			},
			body: strings.NewReader("x"),
		},
		{
			name: "maildir is a file",
			setup: func(t *testing.T, root string) {
				dir := filepath.Join(root, "example.com", "bob")
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "Maildir"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			body: strings.NewReader("x"),
		},
		{
			name: "cancelled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			body: strings.NewReader("x"),
			want: context.Canceled,
		},
		{
			name: "recipient index out of range",
			body: strings.NewReader("x"),
			rcpt: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unprivileged && !testutil.Unprivileged(t) {
				return
			}
			root := filepath.Join(t.TempDir(), "mail")
			if tt.setup != nil {
				tt.setup(t, root)
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			d := New(Options{Root: root, Hostname: "h"})
			err := d.Deliver(ctx, newEnv("a@b.c", "bob@example.com"), tt.rcpt, tt.body)
			var de *delivery.Error
			if !errors.As(err, &de) || de.Permanent || de.Code != 451 || de.Enhanced() != "4.3.0" {
				t.Fatalf("Deliver = %v, want temporary 451 4.3.0", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Deliver = %v, want it to wrap %v", err, tt.want)
			}
			if strings.Contains(de.Msg, root) {
				t.Errorf("error text %q leaks the path", de.Msg)
			}
			md := filepath.Join(root, "example.com", "bob", "Maildir")
			wantEmpty(t, filepath.Join(md, "tmp"))
			wantEmpty(t, filepath.Join(md, "new"))
		})
	}
}

func TestDeliverRecreatesRemovedMailbox(t *testing.T) {
	root := t.TempDir()
	d := New(Options{Root: root, Hostname: "h"})
	md := filepath.Join(root, "example.com", "bob", "Maildir")
	for i, remove := range []string{"", md, filepath.Join(md, "new")} {
		if remove != "" {
			if err := os.RemoveAll(remove); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Deliver(context.Background(), newEnv("", "bob@example.com"), 0, strings.NewReader("x")); err != nil {
			t.Fatalf("delivery %d (after removing %q): %v", i, remove, err)
		}
		checkDelivered(t, md, "h")
	}
}

func TestClassify(t *testing.T) {
	perm := delivery.Permanentf(550, "1.1", "x")
	tests := []struct {
		name         string
		err          error
		code         int
		enhanced     string
		wantSameErr  bool
		wantWrapping error
	}{
		{"enospc", &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, 452, "4.2.2", false, syscall.ENOSPC},
		{"edquot", fmt.Errorf("writing: %w", &os.SyscallError{Syscall: "fsync", Err: syscall.EDQUOT}), 452, "4.2.2", false, syscall.EDQUOT},
		{"eio", &fs.PathError{Op: "write", Path: "/x", Err: syscall.EIO}, 451, "4.3.0", false, syscall.EIO},
		{"unknown", errors.New("boom"), 451, "4.3.0", false, nil},
		{"already classified", perm, 550, "5.1.1", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			var de *delivery.Error
			if !errors.As(got, &de) {
				t.Fatalf("classify = %T, want *delivery.Error", got)
			}
			if de.Code != tt.code || de.Enhanced() != tt.enhanced {
				t.Errorf("classify = %d %s, want %d %s", de.Code, de.Enhanced(), tt.code, tt.enhanced)
			}
			if tt.wantSameErr && got != tt.err {
				t.Errorf("classify changed an already classified error")
			}
			if !tt.wantSameErr && de.Permanent {
				t.Errorf("classify(%v) is permanent", tt.err)
			}
			if tt.wantWrapping != nil && !errors.Is(got, tt.wantWrapping) {
				t.Errorf("classify(%v) does not wrap %v", tt.err, tt.wantWrapping)
			}
		})
	}
}

func TestHostnameEscaped(t *testing.T) {
	tests := []struct {
		host, want string
	}{
		{"mx.example.com", "mx.example.com"},
		{"a/b", `a\057b`},
		{"a:b", `a\072b`},
		{"a/b:c/", `a\057b\072c\057`},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			root := t.TempDir()
			d := New(Options{Root: root, Hostname: tt.host})
			if err := d.Deliver(context.Background(), newEnv("", "bob@example.com"), 0, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, filepath.Join(root, "example.com", "bob", "Maildir"), tt.want)
		})
	}
}

func TestDefaultHostname(t *testing.T) {
	d := New(Options{Root: t.TempDir()})
	if d.host == "" || strings.ContainsAny(d.host, "/:") {
		t.Errorf("default host name %q", d.host)
	}
}

func BenchmarkDeliver5K(b *testing.B) { benchDeliver(b, 5<<10) }

// BenchmarkDeliver10M delivers 10 MB messages, one at a time.
func BenchmarkDeliver10M(b *testing.B) { benchDeliver(b, 10<<20) }

func benchDeliver(b *testing.B, size int) {
	root := b.TempDir()
	d := New(Options{Root: root, Hostname: "bench.example.com"})
	env := newEnv("alice@example.org", "bob@example.com")
	line := strings.Repeat("x", 76) + "\r\n"
	body := strings.Repeat(line, size/len(line)+1)[:size]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Deliver(context.Background(), env, 0, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// A quarantined message goes into the mailbox's Maildir++ Junk folder, which is made with its
// tmp/new/cur next to the mailbox's own; the next message goes to the inbox as usual.
func TestDeliverQuarantine(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail")
	d := New(Options{Root: root, Hostname: "mx.example.com"})
	env := newEnv("a@b.example", "bob@example.com")
	env.Quarantine = true
	if err := d.Deliver(context.Background(), env, 0, strings.NewReader("Subject: spam\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	md := filepath.Join(root, "example.com", "bob", "Maildir")
	want := "Return-Path: <a@b.example>\nDelivered-To: bob@example.com\nSubject: spam\n\nx\n"
	if got := checkDelivered(t, filepath.Join(md, ".Junk"), "mx.example.com"); got != want {
		t.Errorf("Junk content %q, want %q", got, want)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		wantEmpty(t, filepath.Join(md, sub))
	}
	if err := d.Deliver(context.Background(), newEnv("a@b.example", "bob@example.com"), 0, strings.NewReader("y\r\n")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := checkDelivered(t, md, "mx.example.com"); got != "Return-Path: <a@b.example>\nDelivered-To: bob@example.com\ny\n" {
		t.Errorf("inbox content %q", got)
	}
}

// linkCounter counts the links and renames it passes on.
type linkCounter struct {
	safeio.FS
	links, renames int
}

func (c *linkCounter) Link(f safeio.File, newpath string) error {
	c.links++
	return c.FS.Link(f, newpath)
}

func (c *linkCounter) Rename(oldpath, newpath string) error {
	c.renames++
	return c.FS.Rename(oldpath, newpath)
}

// TestDeliverUnnamedOS checks that on Linux a delivery on the real file system takes the path
// without tmp/: its file is linked into new/, nothing is renamed.
func TestDeliverUnnamedOS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_TMPFILE is Linux's")
	}
	fsys := &linkCounter{FS: safeio.OS}
	d := New(Options{Root: t.TempDir(), Hostname: "h", FS: fsys})
	for range 2 {
		if err := d.Deliver(context.Background(), newEnv("s@example.org", "a@example.com"), 0, strings.NewReader("x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	md, _ := d.Path("a@example.com")
	if fsys.links != 2 || fsys.renames != 0 || d.noUnnamed.Load() {
		t.Errorf("links %d, renames %d, fallback %v; want 2 links, no rename, no fallback", fsys.links, fsys.renames, d.noUnnamed.Load())
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 2 {
		t.Errorf("%d files in new/, want 2", n)
	}
}

// noLink is the operating system's file system without /proc/self/fd: files without a name
// can be made but not linked.
type noLink struct{ safeio.FS }

func (noLink) Link(f safeio.File, newpath string) error {
	return &os.LinkError{Op: "linkat", Old: f.Name(), New: newpath, Err: errors.ErrUnsupported}
}

// TestDeliverFallbackToTmp checks the fallback to tmp/ and rename: where a file without a
// name cannot be linked, that delivery fails temporarily, leaving nothing behind, and the next
// ones go through tmp/.
func TestDeliverFallbackToTmp(t *testing.T) {
	fsys := &linkCounter{FS: noLink{safeio.OS}}
	d := New(Options{Root: t.TempDir(), Hostname: "h", FS: fsys})
	env := newEnv("s@example.org", "a@example.com")
	err := d.Deliver(context.Background(), env, 0, strings.NewReader("x\r\n"))
	var de *delivery.Error
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("first delivery: %v, want a temporary error", err)
	}
	if err := d.Deliver(context.Background(), env, 0, strings.NewReader("x\r\n")); err != nil {
		t.Fatalf("second delivery: %v", err)
	}
	md, _ := d.Path("a@example.com")
	if n, m := len(listDir(t, filepath.Join(md, "new"))), len(listDir(t, filepath.Join(md, "tmp"))); n != 1 || m != 0 || fsys.renames != 1 {
		t.Errorf("%d files in new/, %d in tmp/, %d renames; want 1, 0, 1", n, m, fsys.renames)
	}
}
