package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
)

// AccountsCopy copies the configured account store (accounts.url, or the data directory's
// SQLite file) into the store at the URL to, in one transaction on to's side: the accounts with
// their password hashes and mechanism secrets as stored (nothing is hashed again, so every
// password keeps working), the aliases, the DKIM keys and the report counts. A target that
// holds anything is refused unless overwrite, which replaces what has the same key and leaves
// the rest. It prints what it copied on w.
func AccountsCopy(ctx context.Context, cfg config.Config, to string, overwrite bool, w io.Writer) (err error) {
	if _, where, err := config.AccountStore(to); err != nil || to == "" || where == "" {
		return errorf(err, "--to wants the store to copy to: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	}
	data, err := storeData(cfg, false)
	if err != nil {
		return err
	}
	src, err := openStore(cfg, data, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeStore(data, src)) }()
	dcfg := cfg
	dcfg.Accounts.URL = to
	dst, err := openStore(dcfg, data, true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeStore(data, dst)) }()
	from, ok1 := src.(accounts.Copier)
	into, ok2 := dst.(accounts.Copier)
	if !ok1 || !ok2 {
		return errors.New("this account store cannot be copied") // both backends can: a new one must learn
	}
	if !overwrite {
		have, err := into.Dump(ctx)
		if err != nil {
			return dataError(data, "cannot read the target store", err)
		}
		if n := dumpCounts(have); n != "" {
			return errorf(nil, "%s is not empty (%s): --overwrite copies over it, replacing what has the same name", redactURL(to), n)
		}
	}
	d, err := from.Dump(ctx)
	if err != nil {
		return dataError(data, "cannot read the account store", err)
	}
	if err := into.Load(ctx, d); err != nil {
		return dataError(data, "cannot write the target store (nothing was copied)", err)
	}
	n := dumpCounts(d)
	if n == "" {
		n = "nothing: the store is empty"
	}
	_, err = fmt.Fprintf(w, "copied to %s: %s\n", redactURL(to), n)
	return err
}

// closeStore closes s, worded as an error of the account database.
func closeStore(data string, s accounts.Store) error {
	if err := s.Close(); err != nil {
		return dataError(data, "the account database failed", err)
	}
	return nil
}

// dumpCounts says how much d holds ("2 accounts (5 secrets), 1 alias (2 targets), ..."), or
// "" when it is empty.
func dumpCounts(d accounts.Dump) string {
	var secrets, targets int
	for _, a := range d.Accounts {
		secrets += len(a.Secrets)
	}
	for _, a := range d.Aliases {
		targets += len(a.Targets)
	}
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(len(d.Accounts), fmt.Sprintf("accounts (%d mechanism secrets)", secrets))
	add(len(d.Aliases), fmt.Sprintf("aliases (%d targets)", targets))
	add(len(d.DKIMKeys), "DKIM keys")
	add(len(d.ReportCounts), "report counts")
	add(len(d.SentReports), "sent reports")
	return strings.Join(parts, ", ")
}

// redactURL is a store URL without its password, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "the target store" // unparsed, it might show a password
	case u.User == nil:
		return s
	}
	return u.Redacted()
}
