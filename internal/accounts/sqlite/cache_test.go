package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// del` while the server runs: the change is seen by the server's next lookup.
func TestCacheOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second process")
	}
	srv, path := newStore(t)
	ctx := context.Background()
	must(t, srv.Add(ctx, "bob@example.test", "pw"))
	must(t, srv.Add(ctx, "carol@example.test", "pw"))
	lookup{addr: "bob@example.test", account: true}.check(t, srv)
	lookup{addr: "carol@example.test", account: true}.check(t, srv)

	cmd, out := helperProcess(path, "change")
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.Bytes())
	}
	lookup{addr: "bob@example.test"}.check(t, srv)
	lookup{addr: "carol@example.test", account: true, targets: []string{"dave@example.test"}}.check(t, srv)
}

// TestCacheSymlink: a database opened through a symbolic link has its -shm file beside the
// file the link names, where SQLite puts it; the cache must watch that one.
func TestCacheSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "accounts.db")
	must(t, os.Mkdir(filepath.Dir(real), 0o700))
	link := filepath.Join(dir, "accounts.db")
	must(t, os.Symlink(real, link))
	srv, other := openAt(t, link), openAt(t, real)
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
