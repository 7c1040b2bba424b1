package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// AdminStore keeps the logins of the admin web interface (package webadmin). They are not mail
// accounts: an admin cannot send or receive mail with one, and a mail account's password does
// not open the admin pages, so that a leaked mailbox password does not hand over the server.
// Their passwords are argon2id hashes, as the accounts' are.
type AdminStore interface {
	// AddAdmin creates the admin name with password; ErrExists when there is one,
	// ErrEmptyPassword for an empty password, ErrBadAdmin for a malformed name.
	AddAdmin(ctx context.Context, name, password string) error

	// SetAdminPassword replaces the password of name, or returns ErrNotFound.
	SetAdminPassword(ctx context.Context, name, password string) error

	// DeleteAdmin removes the admin name, or returns ErrNotFound.
	DeleteAdmin(ctx context.Context, name string) error

	// Admins returns the admin names, sorted bytewise.
	Admins(ctx context.Context) ([]string, error)

	// VerifyAdmin reports whether password is the password of the admin name. As Verify, an
	// unknown name and a wrong password both give (false, nil) in about the same time.
	VerifyAdmin(ctx context.Context, name, password string) (bool, error)

	// AdminStamp returns a value that changes whenever the password of name changes, and ""
	// when there is no such admin: a web session keeps the stamp of its login and ends when
	// the stamp differs (the password was changed, or the admin deleted).
	AdminStamp(ctx context.Context, name string) (string, error)
}

// AdminStampOf is the stamp of a stored password hash: a digest of it, so that the hash
// itself stays in the store.
func AdminStampOf(encoded string) string {
	sum := sha256.Sum256([]byte(encoded))
	return hex.EncodeToString(sum[:12])
}

// ErrBadAdmin is wrapped, with the reason, by NormalizeAdmin.
var ErrBadAdmin = errors.New("accounts: bad admin name")

// maxAdminName bounds an admin name: it is a login typed by a person, and goes into every log
// line of what the admin does.
const maxAdminName = 64

// NormalizeAdmin returns the admin name in lower case, or an error wrapping ErrBadAdmin. Names
// are letters, digits, '.', '_' and '-', so that one can go into a log line as it is.
func NormalizeAdmin(name string) (string, error) {
	if name == "" || len(name) > maxAdminName {
		return "", fmt.Errorf("%w %q: want 1 to %d characters", ErrBadAdmin, name, maxAdminName)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return "", fmt.Errorf("%w %q: only letters, digits, '.', '_' and '-'", ErrBadAdmin, name)
		}
	}
	return strings.ToLower(name), nil
}

// HashAdmin returns the normalized name and the hash of password, as a store keeps them.
func HashAdmin(name, password string) (norm, hash string, err error) {
	if norm, err = NormalizeAdmin(name); err != nil {
		return "", "", err
	}
	hash, err = HashPassword(password)
	return norm, hash, err
}
