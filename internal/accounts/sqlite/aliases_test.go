package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
)

func TestAliases(t *testing.T) {
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
