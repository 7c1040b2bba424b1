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
