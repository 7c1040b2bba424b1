package config

import (
	"errors"
	"strings"
)

// Accounts says where the account store is: accounts, their secrets, aliases, DKIM keys and
// report counts.
type Accounts struct {
	URL string `toml:"url" doc:"The account store (accounts, AUTH secrets, aliases, DKIM keys, report counts). Empty: SQLite in <data>/accounts.db. \"sqlite:PATH\": another SQLite file. \"postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full\" (or postgresql://, any libpq URL): a PostgreSQL database that several tern nodes share (docs/scaling.md); its schema is made and migrated on start. The --accounts flag and TERN_ACCOUNTS override it; the tern user, alias, dkim and reports commands use the same store."`
}

// Account store kinds, as AccountStore returns them.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// AccountStore is the kind of store url names and where it is: StoreSQLite and a path ("" for
// <data>/accounts.db), or StorePostgres and the URL. The error never quotes the URL, which may
// hold a password.
func AccountStore(url string) (kind, where string, err error) {
	switch {
	case url == "":
		return StoreSQLite, "", nil
	case strings.HasPrefix(url, "sqlite:"):
		p := strings.TrimPrefix(url, "sqlite:")
		if p == "" {
			return "", "", errors.New("accounts.url (--accounts): sqlite: wants a path, sqlite:/var/lib/tern/accounts.db")
		}
		return StoreSQLite, p, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return StorePostgres, url, nil
	}
	return "", "", errors.New("accounts.url (--accounts): want sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
}
