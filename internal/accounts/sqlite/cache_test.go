package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// hits is how many answers s served from its cache so far.
func hits(t *testing.T, s *Store) int {
	t.Helper()
	if s.cache == nil {
		t.Fatal("the store has no lookup cache")
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.hits
}

// lookup is one lookup by the server's store and what it must answer.
type lookup struct {
	addr    string
	account bool
	targets []string
}

// check makes the lookup twice, through Exists, Resolve and AliasTargets, and checks that the
// second of each came from the cache: the answers that follow a change are the cache's, not a
// query's.
func (l lookup) check(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		before := hits(t, s)
		ok, err := s.Exists(ctx, l.addr)
		if err != nil || ok != l.account {
			t.Errorf("Exists(%q) = %v, %v; want %v", l.addr, ok, err, l.account)
		}
		targets, account, err := s.Resolve(ctx, l.addr)
		if err != nil || account != (l.account && len(l.targets) == 0) || !slices.Equal(targets, l.targets) {
			t.Errorf("Resolve(%q) = %q, %v, %v; want %q, %v", l.addr, targets, account, err, l.targets, l.account)
		}
		targets, err = s.AliasTargets(ctx, l.addr)
		if err != nil || !slices.Equal(targets, l.targets) {
			t.Errorf("AliasTargets(%q) = %q, %v; want %q", l.addr, targets, err, l.targets)
		}
		if hits(t, s) == before+3 {
			return
		}
	}
	t.Errorf("lookups of %q were not answered from the cache", l.addr)
}

// TestCacheSeesOtherStore: the server's store (srv) answers from its cache, and another store
// on the same file (other: `tern user`, `tern alias`, the admin web interface) or srv itself
// changes the accounts and aliases; srv's next lookup after each change sees it.
func TestCacheSeesOtherStore(t *testing.T) {
	srv, path := newStore(t)
	other := openAt(t, path)
	ctx := context.Background()
	const bob, carol = "bob@example.test", "carol@example.test"
	steps := []struct {
		name   string
		by     *Store
		change func(s *Store) error
		want   lookup
	}{
		{"none yet", nil, nil, lookup{addr: bob}},
		{"user add", other, func(s *Store) error { return s.Add(ctx, bob, "pw") }, lookup{addr: bob, account: true}},
		{"user disable", other, func(s *Store) error { return s.SetDisabled(ctx, bob, true) }, lookup{addr: bob, account: true}},
		{"alias add", other, func(s *Store) error { return s.AddAlias(ctx, bob, carol) },
			lookup{addr: bob, account: true, targets: []string{carol}}},
		{"alias add another", other, func(s *Store) error { return s.AddAlias(ctx, bob, "dave@example.test") },
			lookup{addr: bob, account: true, targets: []string{carol, "dave@example.test"}}},
		{"alias del", other, func(s *Store) error { return s.DeleteAlias(ctx, bob) }, lookup{addr: bob, account: true}},
		{"user del", other, func(s *Store) error { return s.Delete(ctx, bob) }, lookup{addr: bob}},
		{"other user add", other, func(s *Store) error { return s.Add(ctx, "erin@example.test", "pw") },
			lookup{addr: "erin@example.test", account: true}},
		{"own user add", srv, func(s *Store) error { return s.Add(ctx, bob, "pw") }, lookup{addr: bob, account: true}},
		{"own alias add", srv, func(s *Store) error { return s.AddAlias(ctx, bob, carol) },
			lookup{addr: bob, account: true, targets: []string{carol}}},
		{"own user del", srv, func(s *Store) error { return s.Delete(ctx, bob) }, lookup{addr: bob, targets: []string{carol}}},
		{"own alias del", srv, func(s *Store) error { return s.DeleteAlias(ctx, bob, carol) }, lookup{addr: bob}},
	}
	for _, st := range steps {
		if st.change != nil {
			must(t, st.change(st.by))
		}
		t.Run(st.name, func(t *testing.T) { st.want.check(t, srv) })
	}
	// A catch-all, which RCPT TO looks up for every address that is neither alias nor account.
	for _, want := range [][]string{nil, {carol}} {
		for range 2 {
			if got, err := srv.AliasTargets(ctx, "@example.test"); err != nil || !slices.Equal(got, want) {
				t.Errorf("AliasTargets(@example.test) = %q, %v; want %q", got, err, want)
			}
		}
		must(t, other.AddAlias(ctx, "@example.test", carol))
	}
}

// TestCacheOtherProcess is TestCacheSeesOtherStore across a process boundary, as `tern user
// del` and then `tern user add` while the server runs: each change is seen by the server's
// next lookup. The server's pool keeps no idle connection here, so that each `tern` is the
// last connection to close but for the cache's own: had SQLite deleted the -shm file then
// (as it does at the last close), the cache would watch a file nobody writes any more.
func TestCacheOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second process")
	}
	srv, path := newStore(t)
	srv.db.SetMaxIdleConns(0)
	ctx := context.Background()
	must(t, srv.Add(ctx, "bob@example.test", "pw"))
	must(t, srv.Add(ctx, "carol@example.test", "pw"))
	lookup{addr: "bob@example.test", account: true}.check(t, srv)
	lookup{addr: "carol@example.test", account: true}.check(t, srv)

	for _, step := range []struct {
		do   string // the helper's, see TestHelperProcess
		want []lookup
	}{
		{"change", []lookup{{addr: "bob@example.test"}, {addr: "carol@example.test", account: true, targets: []string{"dave@example.test"}}}},
		{"change back", []lookup{{addr: "bob@example.test", account: true}, {addr: "carol@example.test", account: true}}},
	} {
		cmd, out := helperProcess(path, step.do)
		if err := cmd.Run(); err != nil {
			t.Fatalf("helper process: %v\n%s", err, out.Bytes())
		}
		for _, l := range step.want {
			l.check(t, srv)
		}
	}
}

// TestCacheSymlink: a database opened through a symbolic link has its -shm file beside the
// file the link names, where SQLite puts it; the cache must watch that one.
func TestCacheSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "accounts.db")
	must(t, os.Mkdir(filepath.Dir(target), 0o700))
	link := filepath.Join(dir, "accounts.db")
	must(t, os.Symlink(target, link))
	srv, other := openAt(t, link), openAt(t, target)
	ctx := context.Background()
	lookup{addr: "bob@example.test"}.check(t, srv)
	must(t, other.Add(ctx, "bob@example.test", "pw"))
	lookup{addr: "bob@example.test", account: true}.check(t, srv)
}

// TestCacheBounded: lookups of ever new addresses (a dictionary attack) do not grow the cache
// past maxCached.
func TestCacheBounded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range maxCached + 10 {
		if _, err := s.Exists(ctx, fmt.Sprintf("u%d@example.test", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if n := len(s.cache.exists) + len(s.cache.resolved) + len(s.cache.targets); n > maxCached {
		t.Errorf("the cache holds %d answers, want at most %d", n, maxCached)
	}
}

// TestResolveOwnTargets: a caller changing the targets Resolve or AliasTargets gave it does not change what
// the next caller gets from the cache.
func TestResolveOwnTargets(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.AddAlias(ctx, "bob@example.test", "carol@example.test"))
	for range 2 {
		targets, _, err := s.Resolve(ctx, "bob@example.test")
		must(t, err)
		if !slices.Equal(targets, []string{"carol@example.test"}) {
			t.Fatalf("Resolve = %q, want carol", targets)
		}
		targets[0] = "mallory@example.test"
		targets, err = s.AliasTargets(ctx, "bob@example.test")
		must(t, err)
		if !slices.Equal(targets, []string{"carol@example.test"}) {
			t.Fatalf("AliasTargets = %q, want carol", targets)
		}
		targets[0] = "mallory@example.test"
	}
}

// TestCacheHeader: what the cache makes of the -shm file's first bytes. It serves answers only
// under a header whose two copies agree and that SQLite marked valid.
func TestCacheHeader(t *testing.T) {
	valid := make([]byte, 2*walHeaderSize)
	for i := range walHeaderSize {
		valid[i] = byte(i + 7)
	}
	valid[walIsInit] = 1
	copy(valid[walHeaderSize:], valid[:walHeaderSize])
	with := func(f func(b []byte)) []byte {
		b := slices.Clone(valid)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		shm  []byte
		ok   bool
	}{
		{"valid", valid, true},
		{"longer file", append(slices.Clone(valid), make([]byte, 32768)...), true},
		{"commit under way: copies differ", with(func(b []byte) { b[16]++ }), false},
		{"second copy differs", with(func(b []byte) { b[walHeaderSize+40]++ }), false},
		{"not initialized", with(func(b []byte) { b[walIsInit], b[walHeaderSize+walIsInit] = 0, 0 }), false},
		{"short file", valid[:2*walHeaderSize-1], false},
		{"empty file", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := context.Background()
			must(t, s.Add(ctx, "bob@example.test", "pw"))
			path := filepath.Join(t.TempDir(), "fake-shm")
			must(t, os.WriteFile(path, tc.shm, 0o600))
			fake, err := os.Open(path)
			must(t, err)
			orig := s.cache.shm
			s.cache.shm = fake
			t.Cleanup(func() { s.cache.shm = orig; _ = fake.Close() }) // the Store closes its own
			if _, ok := s.cache.header(); ok != tc.ok {
				t.Errorf("header ok = %v, want %v", ok, tc.ok)
			}
			// Answers are right either way; from the cache only under a valid header.
			for range 3 {
				if ok, err := s.Exists(ctx, "bob@example.test"); !ok || err != nil {
					t.Fatalf("Exists(bob) = %v, %v", ok, err)
				}
			}
			if got, want := hits(t, s) > 0, tc.ok; got != want {
				t.Errorf("answered from the cache: %v, want %v", got, want)
			}
		})
	}
}

// TestCacheNoStaleAnswer: readers on the server's store look addresses up while another store
// adds and deletes accounts, each after the other: add u1, add u2, del u1, add u3, del u2, ...
// After each change the writer publishes what it made true (u2 exists, u1 does not), which the
// change under way next does not touch; a lookup made while no further change completed must
// give that, never an answer from before the change.
func TestCacheNoStaleAnswer(t *testing.T) {
	srv, path := newStore(t)
	other := openAt(t, path)
	ctx := context.Background()
	type fact struct {
		addr   string
		exists bool
	}
	var last atomic.Pointer[fact]
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				f := last.Load()
				if f == nil {
					continue
				}
				ok, err := srv.Exists(ctx, f.addr)
				if err != nil {
					errs <- err
					return
				}
				if last.Load() == f && ok != f.exists {
					errs <- fmt.Errorf("after the change that made Exists(%s) %v, it answers %v", f.addr, f.exists, ok)
					return
				}
			}
		})
	}
	u := func(i int) string { return fmt.Sprintf("u%d@example.test", i) }
	must(t, other.Add(ctx, u(0), "pw"))
	for i := 1; i <= 20; i++ {
		must(t, other.Add(ctx, u(i), "pw"))
		last.Store(&fact{u(i), true})
		must(t, other.Delete(ctx, u(i-1)))
		last.Store(&fact{u(i - 1), false})
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hits(t, srv) == 0 {
		t.Error("no lookup was answered from the cache")
	}
}
