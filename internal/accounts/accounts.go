// Package accounts owns the local mail accounts: the Store interface that the server (recipient
// checks, later SMTP AUTH) and the `tern user` command use, the canonical form of an account
// address, and how passwords are hashed and checked.
//
// Backends live in subpackages (sqlite/, later postgres/). They share the rules defined here:
//
//   - Every Store method passes its address through NormalizeAddress first, so lookups are
//     case-insensitive and a stored address is always safe to use as a directory name.
//   - Passwords are only ever stored as argon2id PHC strings made by HashPassword; no backend
//     sees or keeps the plaintext beyond the call that hashes it.
//   - Verify answers "no" the same way, and in about the same time, for an unknown user and for a
//     wrong password (see Decoy), so AUTH cannot be used to list accounts.
//
// This package does no I/O besides reading random bytes, and it does not deliver mail, log, or
// decide policy (who may relay, send as whom): that belongs to policy and smtpserver.
package accounts

import (
	"context"
	"errors"
	"time"
)

// Store is the account store used by the server (recipient checks, later SMTP AUTH) and by
// `tern user`. Implementations must be safe for concurrent use by many goroutines.
//
// Every method normalizes addr with NormalizeAddress before use and returns an error wrapping
// ErrBadAddress when that fails.
type Store interface {
	// Add creates the account addr with the given password (kept as an argon2id hash) and the
	// mechanism secrets derived from it, in one transaction. It returns ErrExists if the
	// account is already present and ErrEmptyPassword if password is empty.
	Add(ctx context.Context, addr, password string, secrets ...Secret) error

	// Delete removes the account addr, or returns ErrNotFound.
	Delete(ctx context.Context, addr string) error

	// SetPassword replaces the password of addr and all its mechanism secrets with the ones
	// given (a kind not given is dropped: its mechanism was switched off), in one transaction.
	// It returns ErrNotFound if there is no such account and ErrEmptyPassword if password is
	// empty.
	SetPassword(ctx context.Context, addr, password string, secrets ...Secret) error

	// Secret returns the stored secret of the given kind for addr, or ErrNotFound when there
	// is no such account or no secret of that kind.
	Secret(ctx context.Context, addr, kind string) ([]byte, error)

	// List returns every account address in normalized form, sorted bytewise ascending.
	List(ctx context.Context) ([]string, error)

	// Exists reports whether addr is an account. It is on the hot path (once per RCPT TO), so
	// it must be a cheap indexed lookup and must not hash anything.
	Exists(ctx context.Context, addr string) (bool, error)

	// Verify reports whether password is the password of addr. An unknown user and a wrong
	// password both give (false, nil) after spending about the time of one password hash, so
	// the answer and its timing do not reveal which accounts exist. A non-nil error means the
	// check could not be made (storage failure, corrupt stored hash).
	Verify(ctx context.Context, addr, password string) (bool, error)

	// AddDKIMKey stores a DKIM private key for its domain and selector, or returns ErrExists
	// when that domain already has that selector.
	AddDKIMKey(ctx context.Context, k DKIMKey) error

	// DKIMKeys returns the DKIM keys of domain (every domain when domain is ""), sorted by
	// domain, then creation time, then selector.
	DKIMKeys(ctx context.Context, domain string) ([]DKIMKey, error)

	// SetDKIMStates changes the state of some keys of domain (selector to new state) in one
	// transaction, so that switching keys never leaves a domain without an active one; it
	// returns ErrNotFound, and changes nothing, when a selector is not a key of domain.
	SetDKIMStates(ctx context.Context, domain string, states map[string]DKIMState) error

	// ReportStore keeps the statistics behind DMARC and TLS reports (reports.go).
	ReportStore

	// AliasStore keeps the aliases (aliases.go).
	AliasStore

	// AdminStore keeps the admin web interface's logins (admins.go).
	AdminStore

	// SetDisabled disables an account (true) or enables it again: a disabled account keeps
	// its mail, its secrets and its aliases, and still receives mail (Exists is true), but
	// cannot log in: Verify answers false (in the time of a wrong password) and Secret
	// ErrNotFound. It returns ErrNotFound when there is no such account. Deleting the account
	// forgets the flag.
	SetDisabled(ctx context.Context, addr string, disabled bool) error

	// IsDisabled reports whether addr is a disabled account.
	IsDisabled(ctx context.Context, addr string) (bool, error)

	// Close releases the store's resources. The store must not be used afterwards.
	Close() error
}

// DKIMState is where a DKIM key is in its life (see RFC 6376 §3.1 on selectors for rotation).
type DKIMState string

const (
	// DKIMActive keys sign the domain's mail.
	DKIMActive DKIMState = "active"
	// DKIMPublished keys are made and their record published, not yet used: a new key waits
	// here until its record has reached the resolvers (its TTL at least).
	DKIMPublished DKIMState = "published"
	// DKIMRetired keys no longer sign; their record stays published for a while so that mail
	// signed with them still verifies.
	DKIMRetired DKIMState = "retired"
)

// DKIMKey is a DKIM key as stored. Domain and selector are checked by package dkim before they
// reach the store, which keeps them as given.
type DKIMKey struct {
	Domain    string
	Selector  string
	Algorithm string // "rsa" or "ed25519"
	State     DKIMState
	Created   time.Time
	// Private is the private key in PKCS #8 DER, as package dkim makes and reads it. It is a
	// secret: the store file is not world-readable.
	Private []byte
}

// Secret is a per-mechanism secret derived from a password when it is set (package sasl knows
// the kinds and how to derive them); the store keeps it as opaque octets. Some are
// password-equivalent for their own mechanism: see the README.
type Secret struct {
	Kind  string
	Value []byte
}

var (
	// ErrExists is returned by Store.Add when the account is already present, and by
	// Store.AddDKIMKey when the domain already has the selector.
	ErrExists = errors.New("accounts: account already exists")

	// ErrNotFound is returned by Store methods that change an account (or a DKIM key) that
	// does not exist.
	ErrNotFound = errors.New("accounts: account not found")

	// ErrBadAddress is wrapped, with the reason, by NormalizeAddress and by every Store method
	// given an address that is not a valid, path-safe local@domain.
	ErrBadAddress = errors.New("accounts: bad address")

	// ErrEmptyPassword is returned when asked to store an empty password: an empty password
	// would let anyone log in and is never what the operator meant.
	ErrEmptyPassword = errors.New("accounts: empty password")

	// ErrBadHash is wrapped, with the reason, by CheckPassword when the stored hash is not an
	// argon2id PHC string it can use. It means the store is corrupt or was written by
	// something else, never that the password was wrong.
	ErrBadHash = errors.New("accounts: malformed password hash")
)
