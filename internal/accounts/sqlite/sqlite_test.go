package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/storetest"
)

// newStore opens a store on a fresh file and closes it when the test ends.
func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accounts.db")
	return openAt(t, path), path
}

// openAt opens a store on path and closes it when the test ends.
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestStore runs the conformance suite shared with the other backends.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t testing.TB) (accounts.Store, func() accounts.Store) {
		s, path := newStore(t)
		return s, func() accounts.Store { return openAt(t, path) }
	})
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNoPlaintextOnDisk reads every file SQLite wrote, while the store is open (data may
// still be only in the WAL) and after it is closed (checkpointed into the main file).
func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts.db")
	const pw1, pw2 = "Plaintext-Canary-1", "Plaintext-Canary-2"
	ctx := context.Background()

	s, err := Open(path)
	must(t, err)
	must(t, s.Add(ctx, "alice@example.test", pw1))
	must(t, s.Add(ctx, "bob@example.test", pw1))
	must(t, s.SetPassword(ctx, "bob@example.test", pw2))

	check := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		must(t, err)
		sawAddress := false
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			must(t, err)
			for _, pw := range []string{pw1, pw2} {
				if bytes.Contains(b, []byte(pw)) {
					t.Errorf("%s: %s contains the plaintext password %q", when, e.Name(), pw)
				}
			}
			sawAddress = sawAddress || bytes.Contains(b, []byte("alice@example.test"))
		}
		// Guards against checking the wrong files and passing vacuously.
		if !sawAddress {
			t.Errorf("%s: no file in %s contains the account address", when, dir)
		}
	}
	check("open")
	must(t, s.Close())
	check("closed")
}

func TestFileMode(t *testing.T) {
	s, path := newStore(t)
	// A write makes SQLite create the -wal file; it must not be more open than the database.
	must(t, s.Add(context.Background(), "alice@example.test", "pw"))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		must(t, err)
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), mode)
		}
	}
}

// TestOddPath checks that characters meaningful in a URI or in the driver's DSN syntax reach
// the file system unchanged.
func TestOddPath(t *testing.T) {
	for _, name := range []string{"a?b.db", "a#b.db", "a%20b.db", "a b.db", "a&_pragma=x.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			s := openAt(t, path)
			must(t, s.Add(context.Background(), "alice@example.test", "pw"))
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database not at %q: %v", path, err)
			}
			entries, err := os.ReadDir(filepath.Dir(path))
			must(t, err)
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), name) {
					t.Errorf("stray file %q next to %q", e.Name(), name)
				}
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	// Ask on several connections at once, so a pragma that only the first connection got
	// would show up.
	conns := make([]*sql.Conn, 0, 3)
	for range 3 {
		c, err := s.db.Conn(ctx)
		must(t, err)
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, tc := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"user_version", fmt.Sprint(len(migrations))},
		} {
			var got string
			must(t, c.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got))
			if got != tc.want {
				t.Errorf("conn %d: PRAGMA %s = %q, want %q", i, tc.pragma, got, tc.want)
			}
		}
	}
	for _, c := range conns {
		must(t, c.Close())
	}
}

func TestSchemaTooNew(t *testing.T) {
	s, path := newStore(t)
	_, err := s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1))
	must(t, err)
	if s2, err := Open(path); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			must(t, s2.Close())
		}
		t.Fatalf("Open on a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// TestMigrateKeepsData runs a later migration on a file made by the current schema, as a
// future version of tern will.
func TestMigrateKeepsData(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "alice@example.test", "pw", accounts.Secret{Kind: "k", Value: []byte("v")}))

	next := append(slices.Clone(migrations), `CREATE TABLE later (x TEXT)`)
	must(t, migrate(ctx, s.db, next))
	must(t, migrate(ctx, s.db, next)) // a second run is a no-op

	var version int
	must(t, s.db.QueryRow(`PRAGMA user_version`).Scan(&version))
	if version != len(next) {
		t.Errorf("user_version = %d, want %d", version, len(next))
	}
	storetest.WantVerify(t, s, "alice@example.test", "pw", true)
	if v, err := s.Secret(ctx, "alice@example.test", "k"); err != nil || string(v) != "v" {
		t.Errorf("secret after migration: %q, %v", v, err)
	}
}

// A file made by the first schema (before mechanism secrets) opens, gains the secrets table
// and keeps its accounts.
func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", dsn(path))
	must(t, err)
	must(t, migrate(context.Background(), db, migrations[:1]))
	hash, err := accounts.HashPassword("pw")
	must(t, err)
	_, err = db.Exec(`INSERT INTO users VALUES ('alice@example.test', ?, 0)`, hash)
	must(t, err)
	must(t, db.Close())

	s, err := Open(path)
	must(t, err)
	t.Cleanup(func() { must(t, s.Close()) })
	storetest.WantVerify(t, s, "alice@example.test", "pw", true)
	if _, err := s.Secret(context.Background(), "alice@example.test", "cram-md5"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("Secret on a migrated account: %v, want ErrNotFound", err)
	}
}

func TestVerifyCorruptHash(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "alice@example.test", "pw"))
	_, err := s.db.Exec(`UPDATE users SET password = 'pw'`)
	must(t, err)
	ok, err := s.Verify(ctx, "alice@example.test", "pw")
	if !errors.Is(err, accounts.ErrBadHash) || ok {
		t.Fatalf("Verify with a plaintext row = %v, %v; want false, ErrBadHash", ok, err)
	}
}

// helperEnv names the database a re-executed test binary should write to; see
// TestTwoProcesses.
const (
	helperEnv   = "TERN_ACCOUNTS_SQLITE_HELPER_DB"
	helperDoEnv = "TERN_ACCOUNTS_SQLITE_HELPER_DO"
)

// TestHelperProcess is not a test: it is the second process of TestTwoProcesses and
// TestCacheOtherProcess, and does nothing when run normally. What it does to the database is
// named by helperDoEnv.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper for TestTwoProcesses and TestCacheOtherProcess")
	}
	s := openAt(t, path)
	ctx := context.Background()
	switch do := os.Getenv(helperDoEnv); do {
	case "add": // TestTwoProcesses
		for j := range 10 {
			must(t, s.Add(ctx, fmt.Sprintf("child-%d@example.test", j), "pw"))
		}
	case "change": // TestCacheOtherProcess
		must(t, s.Delete(ctx, "bob@example.test"))
		must(t, s.AddAlias(ctx, "carol@example.test", "dave@example.test"))
	case "change back": // TestCacheOtherProcess
		must(t, s.Add(ctx, "bob@example.test", "pw"))
		must(t, s.DeleteAlias(ctx, "carol@example.test"))
	default:
		t.Fatalf("%s=%q: no such helper", helperDoEnv, do)
	}
}

// helperProcess is the command that runs TestHelperProcess on path, doing do; out collects
// what it prints.
func helperProcess(path, do string) (cmd *exec.Cmd, out *bytes.Buffer) {
	cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path, helperDoEnv+"="+do)
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// TestTwoProcesses is TestTwoStoresSameFile across a process boundary, where SQLite's locks
// are real file locks rather than shared in-process state: the child adds accounts while the
// parent adds and reads.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second process")
	}
	path := filepath.Join(t.TempDir(), "accounts.db")
	// The child creates the file concurrently with the parent, exercising the first-open
	// migration race too.
	cmd, out := helperProcess(path, "add")
	must(t, cmd.Start())

	s := openAt(t, path)
	ctx := context.Background()
	for j := range 10 {
		must(t, s.Add(ctx, fmt.Sprintf("parent-%d@example.test", j), "pw"))
		if _, err := s.Exists(ctx, fmt.Sprintf("child-%d@example.test", j)); err != nil {
			t.Errorf("Exists: %v", err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.Bytes())
	}
	list, err := s.List(ctx)
	must(t, err)
	if len(list) != 20 {
		t.Errorf("List = %q, want 10 parent and 10 child accounts", list)
	}
	storetest.WantVerify(t, s, "child-9@example.test", "pw", true)
}

// BenchmarkVerify: a wrong password and an unknown user should take about the same time
// (see TestVerifyCost).
func BenchmarkVerify(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	must(b, s.Add(ctx, "alice@example.test", "pw"))
	for name, addr := range map[string]string{"wrong-password": "alice@example.test", "unknown-user": "nobody@example.test"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if ok, err := s.Verify(ctx, addr, "wrong"); ok || err != nil {
					b.Fatalf("Verify(%q) = %v, %v", addr, ok, err)
				}
			}
		})
	}
}

func BenchmarkExists(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	must(b, s.Add(ctx, "alice@example.test", "pw"))
	for _, addr := range []string{"alice@example.test", "nobody@example.test"} {
		b.Run(addr, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Exists(ctx, addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Exists(ctx, "alice@example.test"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestConcurrentFirstOpen opens a new file from several stores at once, as two `tern user add`
// commands on a fresh data directory do: each Open must wait for the other's set-up (the switch
// to WAL mode and the migration) instead of failing with SQLITE_BUSY.
func TestConcurrentFirstOpen(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "accounts.db")
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := range 4 {
			wg.Go(func() {
				s, err := Open(path)
				if err != nil {
					errs <- fmt.Errorf("round %d, store %d: %w", round, i, err)
					return
				}
				if _, err := s.Exists(context.Background(), "alice@example.test"); err != nil {
					errs <- fmt.Errorf("round %d, store %d: Exists: %w", round, i, err)
				}
				if err := s.Close(); err != nil {
					errs <- fmt.Errorf("round %d, store %d: Close: %w", round, i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
