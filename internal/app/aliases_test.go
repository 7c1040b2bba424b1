package app

import (
	"context"
	"fmt"
	"testing"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
)

// mapLookup is an account store of accounts and aliases in maps.
type mapLookup struct {
	accounts map[string]bool
	aliases  map[string][]string
}

func (m mapLookup) Exists(_ context.Context, addr string) (bool, error) { return m.accounts[addr], nil }
func (m mapLookup) AliasTargets(_ context.Context, addr string) ([]string, error) {
	return m.aliases[addr], nil
}

// The queue gets the expanded recipients (and the unknown targets, to bounce), each once, with the address given as its ORCPT (an
// ORCPT the client gave is kept), and their NOTIFY.
func TestExpandRcpts(t *testing.T) {
	cfg := config.Default()
	cfg.Domains = []string{"a.test"}
	a := newAliases(cfg, mapLookup{
		accounts: map[string]bool{"alice@a.test": true, "bob@a.test": true},
		aliases:  map[string][]string{"team@a.test": {"alice@a.test", "bob@a.test", "typo@a.test", "x@ext.test"}},
	})
	in := []envelope.Recipient{
		{Addr: "Team@a.test", Notify: []string{"FAILURE"}},
		{Addr: "alice+tag@a.test", ORcpt: "rfc822;Alice+Tag@A.test"},
		{Addr: "bob@a.test"},
		{Addr: "gone@a.test"},
		{Addr: "x@ext.test"},
	}
	out, err := expandRcpts(context.Background(), a, in)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(out)
	want := fmt.Sprint([]envelope.Recipient{
		{Addr: "alice@a.test", Notify: []string{"FAILURE"}, ORcpt: "rfc822;Team@a.test"},
		{Addr: "bob@a.test", Notify: []string{"FAILURE"}, ORcpt: "rfc822;Team@a.test"},
		{Addr: "x@ext.test", Notify: []string{"FAILURE"}, ORcpt: "rfc822;Team@a.test"},
		// A target that names nothing is queued to bounce, not dropped.
		{Addr: "typo@a.test", Notify: []string{"FAILURE"}, ORcpt: "rfc822;Team@a.test"},
		{Addr: "gone@a.test"},
	})
	if got != want {
		t.Errorf("expandRcpts:\n got %s\nwant %s", got, want)
	}
}

// countingLookup counts the store's queries.
type countingLookup struct {
	mapLookup
	n int
}

func (c *countingLookup) Exists(ctx context.Context, addr string) (bool, error) {
	c.n++
	return c.mapLookup.Exists(ctx, addr)
}

func (c *countingLookup) AliasTargets(ctx context.Context, addr string) ([]string, error) {
	c.n++
	return c.mapLookup.AliasTargets(ctx, addr)
}

// The commit queues the expansions RCPT made in the same transaction without asking the store
// again; a reload in between (other settings) makes it expand again, and a transaction
// without a memo expands as before.
func TestExpandRcptsMemo(t *testing.T) {
	cfg := config.Default()
	cfg.Domains = []string{"a.test"}
	store := &countingLookup{mapLookup: mapLookup{
		accounts: map[string]bool{"alice@a.test": true, "bob@a.test": true},
		aliases:  map[string][]string{"team@a.test": {"alice@a.test", "bob@a.test", "typo@a.test"}},
	}}
	_, a := newServerRelay(cfg, t.TempDir(), store)
	rcpts := []envelope.Recipient{{Addr: "Team@a.test"}, {Addr: "bob@a.test"}, {Addr: "x@ext.test"}}
	want, err := expandRcpts(context.Background(), a.now(), rcpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		memo    bool
		reload  bool
		queries bool // the commit asks the store
	}{
		{"memo", true, false, false},
		{"reload between RCPT and commit", true, true, true},
		{"no memo", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.memo {
				ctx = withExpansionMemo(ctx)
			}
			for _, rc := range rcpts[:2] { // RCPT TO: the local ones
				if ok, err := a.Exists(ctx, rc.Addr); !ok || err != nil {
					t.Fatalf("Exists(%s) = %v, %v", rc.Addr, ok, err)
				}
			}
			if tc.reload {
				a.set(cfg)
			}
			store.n = 0
			got, err := expandRcpts(ctx, a.now(), rcpts)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("expandRcpts:\n got %v\nwant %v", got, want)
			}
			if (store.n > 0) != tc.queries {
				t.Errorf("the commit made %d queries, want some: %v", store.n, tc.queries)
			}
		})
	}
}
