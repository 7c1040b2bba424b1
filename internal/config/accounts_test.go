package config

import (
	"strings"
	"testing"
)

func TestAccountStore(t *testing.T) {
	for _, tc := range []struct {
		url, kind, where string
		bad              bool
	}{
		{"", StoreSQLite, "", false},
		{"sqlite:/var/lib/tern/accounts.db", StoreSQLite, "/var/lib/tern/accounts.db", false},
		{"sqlite:rel.db", StoreSQLite, "rel.db", false},
		{"postgres://tern:pw@db.example.com/tern", StorePostgres, "postgres://tern:pw@db.example.com/tern", false},
		{"postgresql://tern@/tern?host=/run/postgresql", StorePostgres, "postgresql://tern@/tern?host=/run/postgresql", false},
		{"sqlite:", "", "", true},
		{"mysql://tern:Secret-Canary@db/tern", "", "", true},
		{"/var/lib/tern/accounts.db", "", "", true},
	} {
		kind, where, err := AccountStore(tc.url)
		if (err != nil) != tc.bad || kind != tc.kind || where != tc.where {
			t.Errorf("AccountStore(%q) = %q, %q, %v", tc.url, kind, where, err)
		}
		if err != nil && strings.Contains(err.Error(), "Secret-Canary") {
			t.Errorf("AccountStore(%q): the error quotes the URL: %v", tc.url, err)
		}
	}
}

// FuzzAccountStore: any URL is a store or an error, and an error never quotes the URL (it may
// hold a password).
func FuzzAccountStore(f *testing.F) {
	for _, s := range []string{"", "sqlite:x", "postgres://u:p@h/d", "postgresql://", "mysql://u:pw@h"} {
		f.Add(s)
	}
	_, _, errSQLite := AccountStore("sqlite:")
	_, _, errOther := AccountStore("other")
	f.Fuzz(func(t *testing.T, url string) {
		kind, where, err := AccountStore(url)
		switch {
		case err != nil:
			// The same words whatever the URL: nothing of it is quoted.
			if e := err.Error(); e != errSQLite.Error() && e != errOther.Error() {
				t.Errorf("AccountStore(%q): %v", url, err)
			}
		case kind == StorePostgres && where != url, kind == StoreSQLite && url != "" && "sqlite:"+where != url:
			t.Errorf("AccountStore(%q) = %q, %q", url, kind, where)
		}
	})
}
