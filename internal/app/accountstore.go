package app

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/postgres"
	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/safeio"
)

// postgresOpenTimeout bounds connecting to PostgreSQL and migrating its schema at start: a
// server that cannot reach its account store says so instead of hanging.
const postgresOpenTimeout = 30 * time.Second

// storeData returns the absolute data directory for openStore. When the account store is in it
// (the default), it must exist, or with create it is made; a store that accounts.url puts
// elsewhere needs none, and the directory is only named in errors.
func storeData(cfg config.Config, create bool) (string, error) {
	kind, where, err := config.AccountStore(cfg.Accounts.URL)
	if err != nil {
		return "", errorf(err, "%v", err)
	}
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return "", err
	}
	switch {
	case kind == config.StorePostgres || where != "":
		return data, nil
	case create:
		if err := safeio.MkdirAll(data, 0o700); err != nil {
			return "", explainData(data, "cannot create the data directory", err)
		}
		return data, nil
	}
	return ExistingData(cfg)
}

// openStore opens the account store that accounts.url names (SQLite in the data directory data
// by default). Unless create, a SQLite file must exist already; a PostgreSQL database is made
// ready on every open.
func openStore(cfg config.Config, data string, create bool) (accounts.Store, error) {
	kind, where, err := config.AccountStore(cfg.Accounts.URL)
	if err != nil {
		return nil, errorf(err, "%v", err)
	}
	if kind == config.StorePostgres {
		ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
		defer cancel()
		s, err := postgres.Open(ctx, where)
		if err != nil {
			// pgx's errors name the host, user and database, never the password.
			return nil, errorf(err, "cannot open the account database on PostgreSQL: %v", err)
		}
		return s, nil
	}
	missing := "in " + data
	if where == "" {
		where = accountsPath(data)
	} else {
		missing = where
	}
	if !create {
		if _, err := os.Stat(where); errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(err, "there is no account database %s (tern user add makes it)", missing)
		}
	}
	s, err := sqlite.Open(where)
	if err != nil {
		return nil, dataError(data, "cannot open the account database", err)
	}
	return s, nil
}
