// Package storetest is the conformance suite of accounts.Store: every backend (sqlite,
// postgres) runs Run, so that they keep the same semantics. Tests only.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// New opens a store on a new, empty database and closes it when the test ends; another opens
// one more store on the same database (another process, or another node), closed likewise.
type New func(t testing.TB) (s accounts.Store, another func() accounts.Store)

// Run runs the suite on the stores newStore makes.
func Run(t *testing.T, newStore New) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, New)
	}{
		{"RoundTrip", testRoundTrip},
		{"CaseInsensitive", testCaseInsensitive},
		{"Errors", testErrors},
		{"Addresses", testAddresses},
		{"Secrets", testSecrets},
		{"VerifyCost", testVerifyCost},
		{"ConcurrentExists", testConcurrentExists},
		{"TwoStores", testTwoStores},
		{"Aliases", testAliases},
		{"DKIMKeys", testDKIMKeys},
		{"ReportCounts", testReportCounts},
		{"SentReports", testSentReports},
		{"Copy", testCopy},
		{"Admins", testAdmins},
		{"Disabled", testDisabled},
		{"Resolve", testResolve},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newStore) })
	}
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func WantExists(t *testing.T, s accounts.Store, addr string, want bool) {
	t.Helper()
	got, err := s.Exists(context.Background(), addr)
	if err != nil {
		t.Fatalf("Exists(%q): %v", addr, err)
	}
	if got != want {
		t.Errorf("Exists(%q) = %v, want %v", addr, got, want)
	}
}

func WantVerify(t *testing.T, s accounts.Store, addr, pw string, want bool) {
	t.Helper()
	got, err := s.Verify(context.Background(), addr, pw)
	if err != nil {
		t.Fatalf("Verify(%q, %q): %v", addr, pw, err)
	}
	if got != want {
		t.Errorf("Verify(%q, %q) = %v, want %v", addr, pw, got, want)
	}
}

func WantList(t *testing.T, s accounts.Store, want ...string) {
	t.Helper()
	got, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func testRoundTrip(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()

	WantList(t, s)
	WantExists(t, s, "alice@example.test", false)
	WantVerify(t, s, "alice@example.test", "pw1", false)

	must(t, s.Add(ctx, "alice@example.test", "pw1"))
	must(t, s.Add(ctx, "bob@example.test", "bobpw"))
	must(t, s.Add(ctx, "aaron@other.test", "x"))
	WantExists(t, s, "alice@example.test", true)
	WantExists(t, s, "carol@example.test", false)
	WantVerify(t, s, "alice@example.test", "pw1", true)
	WantVerify(t, s, "alice@example.test", "pw2", false)
	WantVerify(t, s, "alice@example.test", "", false)
	WantVerify(t, s, "bob@example.test", "pw1", false)
	WantList(t, s, "aaron@other.test", "alice@example.test", "bob@example.test")

	must(t, s.SetPassword(ctx, "alice@example.test", "pw2"))
	WantVerify(t, s, "alice@example.test", "pw1", false)
	WantVerify(t, s, "alice@example.test", "pw2", true)
	WantVerify(t, s, "bob@example.test", "bobpw", true)

	must(t, s.Delete(ctx, "alice@example.test"))
	WantExists(t, s, "alice@example.test", false)
	WantVerify(t, s, "alice@example.test", "pw2", false)
	WantList(t, s, "aaron@other.test", "bob@example.test")

	// Re-adding a deleted account works and takes the new password.
	must(t, s.Add(ctx, "alice@example.test", "pw3"))
	WantVerify(t, s, "alice@example.test", "pw3", true)
}

func testCaseInsensitive(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "Alice@Example.TEST", "pw"))
	must(t, s.Add(ctx, "BJØRN@EXÄMPLE.TEST", "pw"))

	for _, addr := range []string{"alice@example.test", "ALICE@EXAMPLE.TEST", "aLiCe@eXaMpLe.TeSt", "bjørn@exämple.test"} {
		t.Run(addr, func(t *testing.T) {
			WantExists(t, s, addr, true)
			WantVerify(t, s, addr, "pw", true)
			if err := s.Add(ctx, addr, "pw"); !errors.Is(err, accounts.ErrExists) {
				t.Errorf("Add(%q) = %v, want ErrExists", addr, err)
			}
		})
	}
	WantList(t, s, "alice@example.test", "bjørn@exämple.test")
	must(t, s.SetPassword(ctx, "ALICE@example.test", "new"))
	WantVerify(t, s, "alice@EXAMPLE.test", "new", true)
	must(t, s.Delete(ctx, "alice@EXAMPLE.TEST"))
	WantExists(t, s, "alice@example.test", false)
}

func testErrors(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "alice@example.test", "pw"))

	tests := []struct {
		name string
		err  error
		want error
	}{
		{"add existing", s.Add(ctx, "alice@example.test", "other"), accounts.ErrExists},
		{"delete missing", s.Delete(ctx, "bob@example.test"), accounts.ErrNotFound},
		{"set password missing", s.SetPassword(ctx, "bob@example.test", "pw"), accounts.ErrNotFound},
		{"add empty password", s.Add(ctx, "bob@example.test", ""), accounts.ErrEmptyPassword},
		{"set empty password", s.SetPassword(ctx, "alice@example.test", ""), accounts.ErrEmptyPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("got %v, want %v", tc.err, tc.want)
			}
		})
	}
	// The failed calls changed nothing.
	WantVerify(t, s, "alice@example.test", "pw", true)
	WantList(t, s, "alice@example.test")
}

func testAddresses(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()

	for _, addr := range []string{
		"bjørn@exämple.test", "kenneth.burgener@oeey.com", "alice+tag@example.test", "root@localhost",
	} {
		t.Run("good/"+addr, func(t *testing.T) {
			must(t, s.Add(ctx, addr, "pw"))
			WantExists(t, s, addr, true)
			WantVerify(t, s, addr, "pw", true)
		})
	}

	for _, addr := range []string{
		"../x@y", "a/b@example.test", ".a@example.test", "a@", "@b", "a b@c", "a@-bad.test",
		"", "x@../y", "x@a/b", "a\x00@example.test", "a@b@example.test",
	} {
		t.Run(fmt.Sprintf("bad/%q", addr), func(t *testing.T) {
			calls := map[string]error{
				"Add":         s.Add(ctx, addr, "pw"),
				"Delete":      s.Delete(ctx, addr),
				"SetPassword": s.SetPassword(ctx, addr, "pw"),
			}
			_, calls["Exists"] = s.Exists(ctx, addr)
			_, calls["Verify"] = s.Verify(ctx, addr, "pw")
			for name, err := range calls {
				if !errors.Is(err, accounts.ErrBadAddress) {
					t.Errorf("%s(%q) = %v, want ErrBadAddress", name, addr, err)
				}
			}
		})
	}
	WantList(t, s, "alice+tag@example.test", "bjørn@exämple.test", "kenneth.burgener@oeey.com", "root@localhost")
}

func testSecrets(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	sec := func(kind, v string) accounts.Secret { return accounts.Secret{Kind: kind, Value: []byte(v)} }
	must(t, s.Add(ctx, "Alice@example.test", "pw", sec("cram-md5", "c1"), sec("ntlm", "n1")))
	want := func(kind, v string) {
		t.Helper()
		got, err := s.Secret(ctx, "ALICE@example.test", kind)
		if v == "" {
			if !errors.Is(err, accounts.ErrNotFound) {
				t.Errorf("%s: %q, %v, want ErrNotFound", kind, got, err)
			}
			return
		}
		if err != nil || string(got) != v {
			t.Errorf("%s: %q, %v, want %q", kind, got, err, v)
		}
	}
	want("cram-md5", "c1")
	want("ntlm", "n1")
	want("scram-sha-256", "")

	// A new password replaces every secret; a kind not given any more is gone.
	must(t, s.SetPassword(ctx, "alice@example.test", "pw2", sec("cram-md5", "c2"), sec("scram-sha-256", "s2")))
	want("cram-md5", "c2")
	want("ntlm", "")
	want("scram-sha-256", "s2")
	WantVerify(t, s, "alice@example.test", "pw2", true)

	// A failed change leaves everything as it was.
	if err := s.Add(ctx, "alice@example.test", "x", sec("cram-md5", "c3")); !errors.Is(err, accounts.ErrExists) {
		t.Fatalf("Add of an existing account: %v", err)
	}
	if err := s.SetPassword(ctx, "alice@example.test", "pw3", sec("ntlm", "a"), sec("ntlm", "b")); err == nil {
		t.Fatal("two secrets of one kind were accepted")
	}
	want("cram-md5", "c2")
	want("ntlm", "")
	WantVerify(t, s, "alice@example.test", "pw2", true)

	// Secrets go with their account.
	must(t, s.Delete(ctx, "alice@example.test"))
	want("cram-md5", "")
	// and do not come back with a new account of the same address.
	must(t, s.Add(ctx, "alice@example.test", "pw4"))
	want("cram-md5", "")
	want("scram-sha-256", "")
	if _, err := s.Secret(ctx, "a/b@example.test", "ntlm"); !errors.Is(err, accounts.ErrBadAddress) {
		t.Errorf("bad address: %v", err)
	}
}

// testVerifyCost checks that an unknown user costs one argon2id computation, like a wrong
// password, so that the time of the answer does not tell an attacker which users exist. The
// cost is counted, not timed: argon2id's work is its memory (19 MiB a computation), which
// both paths must allocate; a missing decoy allocates a thousand times less. How long each
// takes is BenchmarkVerify's to measure.
func testVerifyCost(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "alice@example.test", "pw"))

	allocated := func(addr string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ok, err := s.Verify(ctx, addr, "wrong")
		runtime.ReadMemStats(&after)
		if err != nil || ok {
			t.Fatalf("Verify(%q) = %v, %v", addr, ok, err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	// The first unknown user makes the decoy hash, the next ones check against it.
	for i := range 2 {
		known, unknown := allocated("alice@example.test"), allocated("nobody@example.test")
		if unknown < known/2 {
			t.Errorf("round %d: an unknown user allocated %d octets, a wrong password %d: it skips the hash, and its time tells which users exist", i, unknown, known)
		}
	}
}

func testConcurrentExists(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "alice@example.test", "pw"))

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			for j := range 200 {
				addr, want := "alice@example.test", true
				if (i+j)%2 == 1 {
					addr, want = fmt.Sprintf("user%d@example.test", i), false
				}
				got, err := s.Exists(ctx, addr)
				if err != nil || got != want {
					errs <- fmt.Errorf("goroutine %d: Exists(%q) = %v, %v", i, addr, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testTwoStores is the server and a `tern user` command (or two nodes) on one database: each
// sees the other's writes, and concurrent writers wait for each other instead of failing.
func testTwoStores(t *testing.T, newStore New) {
	a, another := newStore(t)
	b := another()
	ctx := context.Background()

	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i, s := range []accounts.Store{a, b} {
		wg.Go(func() {
			for j := range n {
				addr := fmt.Sprintf("s%d-%d@example.test", i, j)
				if err := s.Add(ctx, addr, "pw"); err != nil {
					errs <- fmt.Errorf("store %d: Add(%q): %w", i, addr, err)
				}
			}
		})
		// A reader running alongside the writers, like RCPT TO checks during `tern user add`.
		wg.Go(func() {
			for j := range 10 * n {
				if _, err := s.Exists(ctx, fmt.Sprintf("s%d-%d@example.test", 1-i, j%n)); err != nil {
					errs <- fmt.Errorf("store %d: Exists: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for i, s := range []accounts.Store{a, b} {
		list, err := s.List(ctx)
		must(t, err)
		if len(list) != 2*n {
			t.Errorf("store %d lists %d accounts, want %d", i, len(list), 2*n)
		}
	}
	must(t, a.SetPassword(ctx, "s1-0@example.test", "changed"))
	WantVerify(t, b, "s1-0@example.test", "changed", true)
	must(t, b.Delete(ctx, "s0-0@example.test"))
	WantExists(t, a, "s0-0@example.test", false)
	if err := b.Add(ctx, "s0-1@example.test", "pw"); !errors.Is(err, accounts.ErrExists) {
		t.Errorf("Add of an account the other store made = %v, want ErrExists", err)
	}
}

func testAliases(t *testing.T, newStore New) {
	s, _ := newStore(t)
	ctx := context.Background()
	steps := []struct {
		op      string // add, del
		addr    string
		targets []string
		want    error
	}{
		{"add", "Kenneth@Oeey.com", []string{"kenneth.burgener@oeey.com"}, nil},
		{"add", "kenneth@oeey.com", []string{"KENNETH.burgener@oeey.com", "k@elsewhere.example"}, nil}, // one is there
		{"add", "team@a.test", []string{"alice@a.test", "bob@a.test", "alice@a.test"}, nil},
		{"add", "@a.org", []string{"@A.test"}, nil},
		{"add", "@a.org", []string{"bob@a.test"}, accounts.ErrBadAlias}, // a domain alias has one target
		{"add", "@b.test", []string{"carol@b.test"}, nil},               // catch-all
		{"add", "@b.test", []string{"@a.test"}, accounts.ErrBadAlias},   // not both
		{"add", "x@a.test", []string{"@a.test"}, accounts.ErrBadAlias},  // a domain target on an address
		{"add", "@a.test", []string{"@a.test"}, accounts.ErrBadAlias},   // itself
		{"add", "x@a.test", nil, accounts.ErrBadAlias},                  // no target
		{"add", "x y@a.test", []string{"b@a.test"}, accounts.ErrBadAddress},
		{"add", "x@a.test", []string{"b/../c@a.test"}, accounts.ErrBadAddress},
		{"add", "@a..test", []string{"b@a.test"}, accounts.ErrBadAddress},
		{"del", "team@a.test", []string{"bob@a.test"}, nil},
		{"del", "team@a.test", []string{"bob@a.test"}, accounts.ErrNotFound},
		{"del", "nobody@a.test", nil, accounts.ErrNotFound},
		{"add", "gone@a.test", []string{"bob@a.test"}, nil},
		{"del", "gone@a.test", nil, nil},
	}
	for i, st := range steps {
		var err error
		if st.op == "add" {
			err = s.AddAlias(ctx, st.addr, st.targets...)
		} else {
			err = s.DeleteAlias(ctx, st.addr, st.targets...)
		}
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Errorf("step %d: %s %s %v = %v, want %v", i, st.op, st.addr, st.targets, err, st.want)
		}
	}
	list, err := s.Aliases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(list)
	want := "[{@a.org [@a.test]} {@b.test [carol@b.test]} {kenneth@oeey.com [k@elsewhere.example kenneth.burgener@oeey.com]} {team@a.test [alice@a.test]}]"
	if got != want {
		t.Errorf("Aliases = %s\nwant %s", got, want)
	}
	if list, _ := s.Aliases(ctx, "B.test"); len(list) != 1 || list[0].Addr != "@b.test" {
		t.Errorf("Aliases(b.test) = %v", list)
	}
	ts, err := s.AliasTargets(ctx, "kenneth@oeey.com")
	if err != nil || !slices.Equal(ts, []string{"k@elsewhere.example", "kenneth.burgener@oeey.com"}) {
		t.Errorf("AliasTargets = %v, %v", ts, err)
	}
	if ts, err := s.AliasTargets(ctx, "nobody@a.test"); err != nil || len(ts) != 0 {
		t.Errorf("AliasTargets(nobody) = %v, %v", ts, err)
	}
}

func dkimKeys(t *testing.T, s accounts.Store, domain string) string {
	t.Helper()
	keys, err := s.DKIMKeys(context.Background(), domain)
	must(t, err)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s %s %s %d %s;", k.Domain, k.Selector, k.Algorithm, k.State, k.Created.Unix(), k.Private)
	}
	return b.String()
}

func testDKIMKeys(t *testing.T, newStore New) {
	ctx := context.Background()
	s, another := newStore(t)
	t0 := time.Unix(1_700_000_000, 0)
	for _, k := range []accounts.DKIMKey{
		{Domain: "example.test", Selector: "b", Algorithm: "rsa", State: accounts.DKIMActive, Created: t0.Add(time.Hour), Private: []byte("k1")},
		{Domain: "example.test", Selector: "a", Algorithm: "ed25519", State: accounts.DKIMActive, Created: t0, Private: []byte("k2")},
		{Domain: "other.test", Selector: "a", Algorithm: "rsa", State: accounts.DKIMPublished, Created: t0, Private: []byte("k3")},
	} {
		must(t, s.AddDKIMKey(ctx, k))
	}
	dup := accounts.DKIMKey{Domain: "example.test", Selector: "a", Algorithm: "rsa", State: accounts.DKIMActive, Created: t0, Private: []byte("x")}
	if err := s.AddDKIMKey(ctx, dup); !errors.Is(err, accounts.ErrExists) {
		t.Errorf("a second key a of example.test: %v, want ErrExists", err)
	}
	all := "example.test a ed25519 active 1700000000 k2;example.test b rsa active 1700003600 k1;other.test a rsa published 1700000000 k3;"
	if got := dkimKeys(t, s, ""); got != all {
		t.Errorf("all keys:\n got %s\nwant %s", got, all)
	}
	if got, want := dkimKeys(t, s, "other.test"), "other.test a rsa published 1700000000 k3;"; got != want {
		t.Errorf("other.test: got %s, want %s", got, want)
	}

	// One unknown selector: nothing changes.
	err := s.SetDKIMStates(ctx, "example.test", map[string]accounts.DKIMState{"a": accounts.DKIMRetired, "zz": accounts.DKIMActive})
	if !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("unknown selector: %v, want ErrNotFound", err)
	}
	if got := dkimKeys(t, s, ""); got != all {
		t.Errorf("after a failed switch:\n got %s\nwant %s", got, all)
	}
	must(t, s.SetDKIMStates(ctx, "example.test", map[string]accounts.DKIMState{"a": accounts.DKIMRetired}))
	must(t, s.Close())

	// The keys outlive the process.
	s2 := another()
	if got, want := dkimKeys(t, s2, "example.test"), "example.test a ed25519 retired 1700000000 k2;example.test b rsa active 1700003600 k1;"; got != want {
		t.Errorf("reopened: got %s, want %s", got, want)
	}
}

func pending(t *testing.T, s accounts.Store) string {
	t.Helper()
	ps, err := s.PendingReports(context.Background())
	must(t, err)
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s %s rows=%d ok=%d fail=%d;", p.Kind, p.Day, p.Domain, p.Rows, p.Success, p.Failure)
	}
	return b.String()
}

// TestReportCounts: counts add up per row, from several writers at once (two nodes sharing
// the file), the latest policy wins, and a row taken is gone: it is never reported twice.
func testReportCounts(t *testing.T, newStore New) {
	ctx := context.Background()
	s, another := newStore(t)
	other := another() // a second node on the same file
	row := func(day, domain, r, policy string, ok, fail int64) accounts.ReportCount {
		return accounts.ReportCount{Kind: accounts.ReportTLS, Day: day, Domain: domain, Row: r, Policy: policy, Success: ok, Failure: fail}
	}
	var wg sync.WaitGroup
	for i, st := range []accounts.Store{s, other, s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			must(t, st.AddReportCounts(ctx, []accounts.ReportCount{
				row("2026-12-04", "b.test", "r1", fmt.Sprint("p", i), 2, 1),
				row("2026-12-05", "b.test", "r1", "p", 1, 0),
			}))
		}()
	}
	wg.Wait()
	must(t, s.AddReportCounts(ctx, []accounts.ReportCount{
		row("2026-12-04", "b.test", "r2", "last", 0, 5),
		row("2026-12-04", "c.test", "r1", "p", 1, 0),
		{Kind: accounts.ReportDMARC, Day: "2026-12-04", Domain: "b.test", Row: "x", Policy: "d", Success: 3},
	}))
	want := "dmarc 2026-12-04 b.test rows=1 ok=3 fail=0;" +
		"tlsrpt 2026-12-04 b.test rows=2 ok=8 fail=9;tlsrpt 2026-12-04 c.test rows=1 ok=1 fail=0;" +
		"tlsrpt 2026-12-05 b.test rows=1 ok=4 fail=0;"
	if got := pending(t, s); got != want {
		t.Errorf("pending:\n got %s\nwant %s", got, want)
	}

	got, err := other.TakeReportCounts(ctx, accounts.ReportTLS, "b.test", "2026-12-04")
	must(t, err)
	if len(got) != 2 || got[0].Row != "r1" || got[0].Success != 8 || got[0].Failure != 4 || got[1].Policy != "last" {
		t.Errorf("taken: %+v", got)
	}
	again, err := s.TakeReportCounts(ctx, accounts.ReportTLS, "b.test", "2026-12-04")
	must(t, err)
	if len(again) != 0 {
		t.Errorf("taken twice: %+v", again)
	}
	want = "dmarc 2026-12-04 b.test rows=1 ok=3 fail=0;tlsrpt 2026-12-04 c.test rows=1 ok=1 fail=0;tlsrpt 2026-12-05 b.test rows=1 ok=4 fail=0;"
	if got := pending(t, s); got != want {
		t.Errorf("pending after take:\n got %s\nwant %s", got, want)
	}
}

func testSentReports(t *testing.T, newStore New) {
	ctx := context.Background()
	s, _ := newStore(t)
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	end, err := s.LastReportEnd(ctx, accounts.ReportDMARC, "b.test")
	must(t, err)
	if !end.IsZero() {
		t.Errorf("no report yet: last end %v", end)
	}
	must(t, s.AddSentReports(ctx, []accounts.SentReport{
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "1", Begin: t0, End: t0.Add(24 * time.Hour),
			Destination: "mailto:r@b.test", Size: 900, Sent: t0.Add(25 * time.Hour), QueueID: "Q1"},
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "1", Begin: t0, End: t0.Add(24 * time.Hour),
			Destination: "mailto:r@x.test", Sent: t0.Add(25 * time.Hour), Note: "not authorized"},
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "0", Begin: t0.Add(-24 * time.Hour), End: t0,
			Destination: "mailto:r@b.test", Size: 800, Sent: t0.Add(time.Hour), QueueID: "Q0"},
	}))
	end, err = s.LastReportEnd(ctx, accounts.ReportDMARC, "b.test")
	must(t, err)
	if !end.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("last end %v", end)
	}
	sent, err := s.SentReports(ctx, t0.Add(2*time.Hour))
	must(t, err)
	if len(sent) != 2 || sent[0].Destination != "mailto:r@b.test" || sent[0].Size != 900 || sent[1].Note != "not authorized" ||
		!sent[0].Begin.Equal(t0) || sent[0].QueueID != "Q1" {
		t.Errorf("sent: %+v", sent)
	}
}

// testCopy: a store's Dump loaded into an empty store makes the same store (the accounts and the
// admins log in with their passwords: the hashes and secrets are the same bytes; a disabled
// account stays disabled), and loading it again changes nothing (counts are not added twice)
// but takes back a password or a disabled flag changed meanwhile.
func testCopy(t *testing.T, newStore New) {
	ctx := context.Background()
	src, _ := newStore(t)
	copier, ok := src.(accounts.Copier)
	if !ok {
		t.Fatalf("%T is no accounts.Copier", src)
	}
	must(t, src.Add(ctx, "a@b.test", "pw-a", accounts.Secret{Kind: "SCRAM-SHA-256", Value: []byte{0, 1, 2}},
		accounts.Secret{Kind: "CRAM-MD5", Value: []byte("cram")}))
	must(t, src.Add(ctx, "c@b.test", "pw-c"))
	must(t, src.Add(ctx, "off@b.test", "pw-off"))
	must(t, src.SetDisabled(ctx, "off@b.test", true))
	must(t, src.AddAdmin(ctx, "root", "admin-pw"))
	must(t, src.AddAdmin(ctx, "ops", "ops-pw"))
	must(t, src.AddAlias(ctx, "team@b.test", "a@b.test", "c@b.test"))
	must(t, src.AddAlias(ctx, "@b.test", "a@b.test"))
	t0 := time.Unix(1764892800, 0)
	must(t, src.AddDKIMKey(ctx, accounts.DKIMKey{Domain: "b.test", Selector: "s1", Algorithm: "rsa", State: accounts.DKIMActive, Created: t0, Private: []byte("k1")}))
	must(t, src.AddDKIMKey(ctx, accounts.DKIMKey{Domain: "b.test", Selector: "s2", Algorithm: "ed25519", State: accounts.DKIMPublished, Created: t0.Add(time.Hour), Private: []byte("k2")}))
	must(t, src.AddReportCounts(ctx, []accounts.ReportCount{{Kind: accounts.ReportTLS, Day: "2026-12-04", Domain: "x.test", Row: "r", Policy: "p", Success: 2, Failure: 1}}))
	must(t, src.AddSentReports(ctx, []accounts.SentReport{{Kind: accounts.ReportDMARC, Domain: "x.test", ReportID: "1",
		Begin: t0.UTC(), End: t0.Add(24 * time.Hour).UTC(), Destination: "mailto:r@x.test", Size: 9, Sent: t0.Add(25 * time.Hour).UTC(), QueueID: "Q"}}))
	d, err := copier.Dump(ctx)
	must(t, err)
	if len(d.Accounts) != 3 || len(d.Accounts[0].Secrets) != 2 || !d.Accounts[2].Disabled || d.Accounts[0].Disabled ||
		len(d.Aliases) != 2 || len(d.DKIMKeys) != 2 || len(d.ReportCounts) != 1 || len(d.SentReports) != 1 ||
		len(d.Admins) != 2 || d.Admins[1].Name != "root" || d.Admins[1].Created.IsZero() {
		t.Fatalf("dump: %+v", d)
	}

	dst, _ := newStore(t)
	load := func() {
		t.Helper()
		must(t, dst.(accounts.Copier).Load(ctx, d))
		got, err := dst.(accounts.Copier).Dump(ctx)
		must(t, err)
		if !reflect.DeepEqual(got, d) {
			t.Errorf("loaded:\n got %+v\nwant %+v", got, d)
		}
	}
	load()
	WantVerify(t, dst, "a@b.test", "pw-a", true)
	WantVerify(t, dst, "off@b.test", "pw-off", false)
	wantDisabled := func(addr string, want bool) {
		t.Helper()
		if got, err := dst.IsDisabled(ctx, addr); err != nil || got != want {
			t.Errorf("IsDisabled(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	wantDisabled("off@b.test", true)
	wantDisabled("a@b.test", false)
	wantAdmin := func(name, pw string) {
		t.Helper()
		if ok, err := dst.VerifyAdmin(ctx, name, pw); err != nil || !ok {
			t.Errorf("VerifyAdmin(%q, %q) = %v, %v in the copy", name, pw, ok, err)
		}
	}
	wantAdmin("root", "admin-pw")
	wantAdmin("ops", "ops-pw")
	sec, err := dst.Secret(ctx, "a@b.test", "SCRAM-SHA-256")
	must(t, err)
	if !bytes.Equal(sec, []byte{0, 1, 2}) {
		t.Errorf("secret %x", sec)
	}
	must(t, dst.SetPassword(ctx, "a@b.test", "changed"))
	must(t, dst.SetAdminPassword(ctx, "root", "changed"))
	must(t, dst.SetDisabled(ctx, "off@b.test", false))
	must(t, dst.SetDisabled(ctx, "a@b.test", true))
	load()
	WantVerify(t, dst, "a@b.test", "pw-a", true)
	wantDisabled("off@b.test", true)
	wantAdmin("root", "admin-pw")
}

// resolver is policy.AddressResolver, which a store may implement (policy is a layer above).
type resolver interface {
	accounts.Store
	Resolve(ctx context.Context, addr string) (targets []string, account bool, err error)
}

// Resolve, where the store has it, answers as AliasTargets and then Exists do: for accounts, aliases, an alias that is
// an account too, unknown, not normalized and impossible addresses, disabled accounts.
func testResolve(t *testing.T, newStore New) {
	store, _ := newStore(t)
	s, ok := store.(resolver)
	if !ok {
		t.Skip("the store has no Resolve (policy.AddressResolver is optional)")
	}
	ctx := context.Background()
	for _, a := range []string{"bob@a.test", "alice@a.test", "off@a.test"} {
		if err := store.Add(ctx, a, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetDisabled(ctx, "off@a.test", true); err != nil {
		t.Fatal(err)
	}
	for addr, targets := range map[string][]string{
		"team@a.test": {"bob@a.test", "alice@a.test", "x@ext.test"},
		"bob@a.test":  {"bob@a.test", "bob@ext.test"},
		"@b.test":     {"bob@a.test"},
	} {
		if err := store.AddAlias(ctx, addr, targets...); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []string{
		"bob@a.test", "alice@a.test", "off@a.test", "team@a.test", "nobody@a.test", "Alice@a.test",
		"@b.test", "not an address", "",
	} {
		wantTargets, wantErr := s.AliasTargets(ctx, addr)
		wantAccount := false
		if len(wantTargets) == 0 && wantErr == nil {
			wantAccount, wantErr = s.Exists(ctx, addr)
		}
		targets, account, err := s.Resolve(ctx, addr)
		if fmt.Sprint(targets, account, err) != fmt.Sprint(wantTargets, wantAccount, wantErr) {
			t.Errorf("Resolve(%q) = %q, %v, %v; want %q, %v, %v", addr, targets, account, err, wantTargets, wantAccount, wantErr)
		}
	}
}
