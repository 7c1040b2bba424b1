package sqlite

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkAliasTargets(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	for i := range 1000 {
		if err := s.AddAlias(ctx, fmt.Sprintf("alias%d@a.test", i), fmt.Sprintf("user%d@a.test", i)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.AliasTargets(ctx, fmt.Sprintf("alias%d@a.test", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// Resolve answers as AliasTargets and then Exists do: for accounts, aliases, an alias that is
// an account too, unknown, not normalized and impossible addresses, disabled accounts.
func TestResolve(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, a := range []string{"bob@a.test", "alice@a.test", "off@a.test"} {
		if err := s.Add(ctx, a, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetDisabled(ctx, "off@a.test", true); err != nil {
		t.Fatal(err)
	}
	for addr, targets := range map[string][]string{
		"team@a.test": {"bob@a.test", "alice@a.test", "x@ext.test"},
		"bob@a.test":  {"bob@a.test", "bob@ext.test"},
		"@b.test":     {"bob@a.test"},
	} {
		if err := s.AddAlias(ctx, addr, targets...); err != nil {
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
