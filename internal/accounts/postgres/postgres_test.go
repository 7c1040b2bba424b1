package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/storetest"
	"github.com/tern-mail/tern/internal/testutil"
)

// server is one PostgreSQL for the tests of this package, each test in a database of its own.
type server struct {
	pg *testutil.Postgres
	mu sync.Mutex
	n  int
}

// newDatabase creates a new empty database and returns its URL.
func (sv *server) newDatabase(t testing.TB) string {
	t.Helper()
	sv.mu.Lock()
	sv.n++
	name := fmt.Sprintf("t%d", sv.n)
	sv.mu.Unlock()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, sv.pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }() // a test connection
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return "postgres://tern@" + sv.pg.Addr + "/" + name + "?sslmode=disable"
}

func openURL(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestPostgres(t *testing.T) {
	sv := &server{pg: testutil.StartPostgres(t)}

	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t testing.TB) (accounts.Store, func() accounts.Store) {
			url := sv.newDatabase(t)
			return openURL(t, url), func() accounts.Store { return openURL(t, url) }
		})
	})

	// Nodes starting together on a new database: the advisory lock makes one of them migrate
	// and the others wait, instead of failing on tables created twice.
	t.Run("ConcurrentFirstOpen", func(t *testing.T) {
		url := sv.newDatabase(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := range 4 {
			wg.Go(func() {
				s, err := Open(context.Background(), url)
				if err != nil {
					errs <- fmt.Errorf("store %d: %w", i, err)
					return
				}
				if _, err := s.Exists(context.Background(), "alice@example.test"); err != nil {
					errs <- fmt.Errorf("store %d: Exists: %w", i, err)
				}
				_ = s.Close() // always nil
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("MigrateKeepsData", func(t *testing.T) {
		url := sv.newDatabase(t)
		s := openURL(t, url)
		ctx := context.Background()
		must(t, s.Add(ctx, "alice@example.test", "pw", accounts.Secret{Kind: "k", Value: []byte("v")}))
		next := append(slices.Clone(migrations), `CREATE TABLE later (x TEXT)`)
		must(t, s.migrate(ctx, next))
		must(t, s.migrate(ctx, next)) // a second run is a no-op
		storetest.WantVerify(t, s, "alice@example.test", "pw", true)
		if v, err := s.Secret(ctx, "alice@example.test", "k"); err != nil || string(v) != "v" {
			t.Errorf("secret after migration: %q, %v", v, err)
		}
		// The database is now newer than this program.
		if _, err := Open(ctx, url); !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open on a newer schema = %v, want ErrSchemaTooNew", err)
		}
	})

	// A database made by the first schema opens, gains the later tables and keeps its accounts.
	t.Run("MigrateFromVersion1", func(t *testing.T) {
		url := sv.newDatabase(t)
		s := openURL(t, url)
		ctx := context.Background()
		_, err := s.pool.Exec(ctx, `DROP TABLE tern_schema, secrets, users, dkim_keys, report_counts, reports_sent, aliases, rate_counters, admins, disabled_users`)
		must(t, err)
		must(t, s.migrate(ctx, migrations[:1]))
		hash, err := accounts.HashPassword("pw")
		must(t, err)
		_, err = s.pool.Exec(ctx, `INSERT INTO users VALUES ('alice@example.test', $1, 0)`, hash)
		must(t, err)
		s2 := openURL(t, url)
		storetest.WantVerify(t, s2, "alice@example.test", "pw", true)
		must(t, s2.AddAlias(ctx, "a@example.test", "alice@example.test"))
	})

	t.Run("Counter", func(t *testing.T) { testCounter(t, sv) })

	t.Run("BadURL", func(t *testing.T) {
		_, err := Open(context.Background(), "postgres://tern:Secret-Canary@[::1")
		if err == nil || strings.Contains(err.Error(), "Secret-Canary") {
			t.Errorf("Open with a malformed URL = %v, want an error without the password", err)
		}
	})

	// Last: it stops the server.
	t.Run("CounterDown", func(t *testing.T) { testCounterDown(t, sv) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
