package app

import (
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://tern:s3cret@db.example.com:5432/tern?sslmode=verify-full", "postgres://tern:xxxxx@db.example.com:5432/tern?sslmode=verify-full"},
		{"postgres://tern@db.example.com/tern", "postgres://tern@db.example.com/tern"},
		{"sqlite:/var/lib/tern/accounts.db", "sqlite:/var/lib/tern/accounts.db"},
		{"postgres://tern:s3cret@db.example.com:%zz/tern", "the target store"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDumpCounts(t *testing.T) {
	d := accounts.Dump{
		Accounts: []accounts.StoredAccount{{Addr: "a@b.test", Secrets: make([]accounts.Secret, 3)}, {Addr: "c@b.test"}},
		Aliases:  []accounts.Alias{{Addr: "x@b.test", Targets: []string{"a@b.test", "c@b.test"}}},
		DKIMKeys: make([]accounts.DKIMKey, 1),
	}
	if got, want := dumpCounts(d), "2 accounts (3 mechanism secrets), 1 aliases (2 targets), 1 DKIM keys"; got != want {
		t.Errorf("dumpCounts = %q, want %q", got, want)
	}
	if got := dumpCounts(accounts.Dump{}); got != "" {
		t.Errorf("dumpCounts of nothing = %q", got)
	}
}
