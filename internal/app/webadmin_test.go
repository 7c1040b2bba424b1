package app

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
)

// TestWebAccounts: the accounts page's view of the store stores the configured mechanisms'
// secrets (as tern user add does), lists a disabled account without mechanisms, and words its
// errors as tern user and tern alias do.
func TestWebAccounts(t *testing.T) {
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() }) // the test's checks are done by then
	cfg := config.Default()
	cfg.Domains = []string{"example.test"}
	a := webAccounts{cfg: cfg, store: store}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Add(ctx, "Bob@example.test", "pw"))
	must(a.Add(ctx, "carol@example.test", "pw"))
	must(a.SetDisabled(ctx, "carol@example.test", true))
	list, err := a.List(ctx)
	must(err)
	if len(list) != 2 || list[0].Addr != "bob@example.test" || !slices.Contains(list[0].Mechanisms, "SCRAM-SHA-256") ||
		len(list[0].Missing) != 0 || list[0].Disabled || !list[1].Disabled || len(list[1].Mechanisms) != 0 {
		t.Errorf("List: %+v", list)
	}
	must(a.SetPassword(ctx, "bob@example.test", "pw2"))
	if ok, err := store.Verify(ctx, "bob@example.test", "pw2"); !ok || err != nil {
		t.Errorf("the new password: %v %v", ok, err)
	}
	must(a.AddAlias(ctx, "info@example.test", []string{"bob@example.test"}))
	for _, tc := range []struct {
		what string
		err  error
		want string
	}{
		{"add twice", a.Add(ctx, "bob@example.test", "x"), "bob@example.test already has an account"},
		{"bad address", a.Add(ctx, "bob", "x"), "not a mail address"},
		{"empty password", a.SetPassword(ctx, "bob@example.test", ""), "the password is empty"},
		{"delete nobody", a.Delete(ctx, "nobody@example.test"), "there is no account nobody@example.test"},
		{"disable nobody", a.SetDisabled(ctx, "nobody@example.test", true), "there is no account nobody@example.test"},
		{"alias target not there", a.DeleteAlias(ctx, "info@example.test", []string{"carol@example.test"}), "info@example.test: no such alias or target"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.what, tc.err, tc.want)
		}
	}
	must(a.Delete(ctx, "bob@example.test"))
	aliases, err := a.Aliases(ctx)
	must(err)
	if len(aliases) != 1 || aliases[0].Addr != "info@example.test" {
		t.Errorf("Aliases: %+v", aliases)
	}
}
