package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
)

// testAdmins checks the admin logins: apart from the mail accounts both ways, case-insensitive
// names, the errors, and a change seen by another store on the same database.
func testAdmins(t *testing.T, newStore New) {
	s, another := newStore(t)
	ctx := context.Background()
	wantAdmins := func(s accounts.Store, want ...string) {
		t.Helper()
		got, err := s.Admins(ctx)
		must(t, err)
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("Admins() = %q, want %q", got, want)
		}
	}
	wantVerify := func(s accounts.Store, name, pw string, want bool) {
		t.Helper()
		got, err := s.VerifyAdmin(ctx, name, pw)
		if err != nil || got != want {
			t.Errorf("VerifyAdmin(%q, %q) = %v, %v; want %v", name, pw, got, err, want)
		}
	}
	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s = %v, want %v", what, err, want)
		}
	}

	wantAdmins(s)
	wantVerify(s, "alice", "pw", false)
	must(t, s.AddAdmin(ctx, "Alice", "pw"))
	must(t, s.AddAdmin(ctx, "bob", "bobpw"))
	wantAdmins(s, "alice", "bob")
	wantVerify(s, "alice", "pw", true)
	wantVerify(s, "ALICE", "pw", true)
	wantVerify(s, "alice", "bobpw", false)
	wantVerify(s, "not a name", "pw", false)
	wantErr("AddAdmin twice", s.AddAdmin(ctx, "alice", "x"), accounts.ErrExists)
	wantErr("AddAdmin with empty password", s.AddAdmin(ctx, "carol", ""), accounts.ErrEmptyPassword)
	wantErr("AddAdmin bad name", s.AddAdmin(ctx, "carol@example.test", "x"), accounts.ErrBadAdmin)
	wantErr("SetAdminPassword of nobody", s.SetAdminPassword(ctx, "carol", "x"), accounts.ErrNotFound)
	wantErr("DeleteAdmin of nobody", s.DeleteAdmin(ctx, "carol"), accounts.ErrNotFound)

	// An admin is no mail account, and a mail account no admin.
	must(t, s.Add(ctx, "alice@example.test", "mailpw"))
	WantVerify(t, s, "alice@example.test", "pw", false)
	wantVerify(s, "alice@example.test", "mailpw", false)
	WantList(t, s, "alice@example.test")

	stamp := func(s accounts.Store, name string) string {
		t.Helper()
		st, err := s.AdminStamp(ctx, name)
		must(t, err)
		return st
	}
	before, bobs := stamp(s, "alice"), stamp(s, "bob")
	if before == "" || before != stamp(s, "ALICE") || before == bobs {
		t.Errorf("AdminStamp: alice %q (ALICE %q), bob %q: want one non-empty stamp each", before, stamp(s, "ALICE"), bobs)
	}
	for _, name := range []string{"carol", "not a name"} {
		if st := stamp(s, name); st != "" {
			t.Errorf("AdminStamp(%q) = %q, want \"\" for no admin", name, st)
		}
	}

	other := another()
	must(t, s.SetAdminPassword(ctx, "alice", "pw2"))
	wantVerify(other, "alice", "pw", false)
	wantVerify(other, "alice", "pw2", true)
	if after := stamp(other, "alice"); after == "" || after == before {
		t.Errorf("AdminStamp after a new password = %q, was %q: want a new one", after, before)
	}
	must(t, other.DeleteAdmin(ctx, "BOB"))
	wantAdmins(s, "alice")
	if st := stamp(s, "bob"); st != "" {
		t.Errorf("AdminStamp of a deleted admin = %q, want \"\"", st)
	}
}

// testDisabled checks disabled accounts: no login by password or secret, mail still received,
// enabled again, forgotten with the account, seen by another store.
func testDisabled(t *testing.T, newStore New) {
	s, another := newStore(t)
	ctx := context.Background()
	must(t, s.Add(ctx, "bob@example.test", "pw", accounts.Secret{Kind: "k", Value: []byte("v")}))
	must(t, s.Add(ctx, "carol@example.test", "pw"))
	wantDisabled := func(s accounts.Store, addr string, want bool) {
		t.Helper()
		got, err := s.IsDisabled(ctx, addr)
		if err != nil || got != want {
			t.Errorf("IsDisabled(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	wantDisabled(s, "bob@example.test", false)
	must(t, s.SetDisabled(ctx, "BOB@example.test", true))
	must(t, s.SetDisabled(ctx, "bob@example.test", true)) // twice is no error
	wantDisabled(s, "bob@example.test", true)
	WantVerify(t, s, "bob@example.test", "pw", false)
	WantExists(t, s, "bob@example.test", true)
	if _, err := s.Secret(ctx, "bob@example.test", "k"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("Secret of a disabled account = %v, want ErrNotFound", err)
	}
	WantVerify(t, s, "carol@example.test", "pw", true)
	other := another()
	wantDisabled(other, "bob@example.test", true)
	WantVerify(t, other, "bob@example.test", "pw", false)

	must(t, other.SetDisabled(ctx, "bob@example.test", false))
	WantVerify(t, s, "bob@example.test", "pw", true)
	if v, err := s.Secret(ctx, "bob@example.test", "k"); err != nil || string(v) != "v" {
		t.Errorf("Secret after enabling = %q, %v", v, err)
	}

	if err := s.SetDisabled(ctx, "nobody@example.test", true); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("SetDisabled of nobody = %v, want ErrNotFound", err)
	}
	wantDisabled(s, "nobody@example.test", false)
	// Deleted and made again, the account is not disabled.
	must(t, s.SetDisabled(ctx, "bob@example.test", true))
	must(t, s.Delete(ctx, "bob@example.test"))
	must(t, s.Add(ctx, "bob@example.test", "pw2"))
	wantDisabled(s, "bob@example.test", false)
	WantVerify(t, s, "bob@example.test", "pw2", true)
}
