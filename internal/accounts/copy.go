package accounts

import (
	"context"
	"time"
)

// Copier is implemented by the stores that tern accounts copy moves from one backend to
// another (SQLite to PostgreSQL when a second node comes). It works on what is stored: the
// password hashes and the mechanism secrets are copied as they are, never hashed again, and no
// password is seen.
type Copier interface {
	// Dump returns everything the store holds except the shared rate counters, which expire
	// on their own within their window.
	Dump(ctx context.Context) (Dump, error)

	// Load writes d in one transaction: all of it or nothing. A row whose key is there already
	// (an account, an alias target, a DKIM selector, a report row, a sent report) takes d's
	// values; an account's secrets become d's. Rows d does not name are left alone.
	Load(ctx context.Context, d Dump) error
}

// Dump is the content of an account store.
type Dump struct {
	Accounts     []StoredAccount
	Aliases      []Alias
	DKIMKeys     []DKIMKey
	ReportCounts []ReportCount
	SentReports  []SentReport
}

// StoredAccount is an account as stored.
type StoredAccount struct {
	Addr string
	// Hash is the password's argon2id PHC string (HashPassword).
	Hash    string
	Created time.Time
	// Secrets are the mechanism secrets, sorted by kind.
	Secrets []Secret
}

// DumpPublic fills in the parts of d that the Store interface reads as they are stored (the
// aliases, the DKIM keys, the reports sent), for a backend's Dump, which reads the rest itself.
func DumpPublic(ctx context.Context, s Store, d *Dump) (err error) {
	if d.Aliases, err = s.Aliases(ctx, ""); err != nil {
		return err
	}
	if d.DKIMKeys, err = s.DKIMKeys(ctx, ""); err != nil {
		return err
	}
	d.SentReports, err = s.SentReports(ctx, time.Unix(0, 0))
	return err
}
