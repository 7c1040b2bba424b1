package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

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

func TestDKIMKeys(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
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
	s2 := openAt(t, path)
	if got, want := dkimKeys(t, s2, "example.test"), "example.test a ed25519 retired 1700000000 k2;example.test b rsa active 1700003600 k1;"; got != want {
		t.Errorf("reopened: got %s, want %s", got, want)
	}
}
