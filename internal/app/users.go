package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/sasl"
)

// openAccounts opens the account store. With create it makes the data directory and the
// database if needed (tern user add); without, both must exist. A store outside the data
// directory (PostgreSQL, sqlite:PATH) needs no data directory at all. It may be used while a
// server runs on the same store.
func openAccounts(cfg config.Config, create bool) (accounts.Store, error) {
	data, err := storeData(cfg, create)
	if err != nil {
		return nil, err
	}
	return openStore(cfg, data, create)
}

// withAccounts runs f on the account store (see openAccounts for create) and words its error
// for the administrator.
func withAccounts(cfg config.Config, addr string, create bool, f func(s accounts.Store) error) (err error) {
	s, err := openAccounts(cfg, create)
	if err != nil {
		return err
	}
	defer func() {
		// f's error is the one to tell; a failed Close only when f went through.
		if cerr := s.Close(); err == nil && cerr != nil {
			err = userError(cfg, addr, cerr)
		}
	}()
	return userError(cfg, addr, f(s))
}

// userError words an error of a tern user command about addr for the administrator.
func userError(cfg config.Config, addr string, err error) error {
	var worded *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &worded):
		return err // worded already (aliases.go)
	case errors.Is(err, accounts.ErrExists):
		return errorf(err, "%s already has an account (tern user passwd %s changes its password)", addr, addr)
	case errors.Is(err, accounts.ErrNotFound):
		return errorf(err, "there is no account %s (tern user list shows them)", addr)
	case errors.Is(err, accounts.ErrBadAddress):
		// The reason follows the sentinel's text: `accounts: bad address "x": missing '@'`.
		return errorf(err, "not a mail address: %s", strings.TrimPrefix(err.Error(), accounts.ErrBadAddress.Error()+" "))
	case errors.Is(err, accounts.ErrEmptyPassword):
		return errorf(err, "the password is empty: an account needs one")
	}
	data, _ := filepath.Abs(cfg.Data)
	return dataError(data, "the account database failed", err)
}

// UserAdd creates an account; it warns on w when the address is not in a local domain, since
// such an account would never receive mail.
func UserAdd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	return setPassword(ctx, cfg, addr, password, w, true)
}

// noteNotLocal notes on b when the domain of addr (an address or @domain) is not a local
// domain, and reports whether it is one.
func noteNotLocal(b *strings.Builder, cfg config.Config, addr string) bool {
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	if slices.Contains(cfg.Domains, domain) {
		return true
	}
	fmt.Fprintf(b, "note: %s is not a local domain (now: %s); add it to domains in the configuration (tern reload takes it) or give --domain %s to receive its mail\n",
		domain, strings.Join(cfg.Domains, ", "), domain)
	return false
}

// UserPasswd changes an account's password.
func UserPasswd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	return setPassword(ctx, cfg, addr, password, w, false)
}

// setPassword is UserAdd (add) and UserPasswd: both store the password and the secrets of the
// configured mechanisms.
func setPassword(ctx context.Context, cfg config.Config, addr, password string, w io.Writer, add bool) error {
	// The address and the password are checked before anything is made.
	norm, mechs, secrets, err := deriveSecrets(cfg, addr, password)
	if err != nil {
		return userError(cfg, addr, err)
	}
	return withAccounts(cfg, addr, add, func(s accounts.Store) error {
		if !add {
			if err := s.SetPassword(ctx, norm, password, secrets...); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "password changed for %s (secrets for %s)\n", norm, strings.Join(mechs, " "))
			return err
		}
		if err := s.Add(ctx, norm, password, secrets...); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "added %s (secrets for %s)\n", norm, strings.Join(mechs, " "))
		noteNotLocal(&b, cfg, norm)
		_, err := io.WriteString(w, b.String())
		return err
	})
}

// deriveSecrets makes the secrets of the configured mechanisms for addr's new password, so that
// what the store keeps always matches what serve offers.
func deriveSecrets(cfg config.Config, addr, password string) (norm string, mechs []string, secrets []accounts.Secret, err error) {
	if norm, err = accounts.NormalizeAddress(addr); err != nil {
		return "", nil, nil, err
	}
	if password == "" {
		return "", nil, nil, accounts.ErrEmptyPassword
	}
	if mechs, err = config.ParseMechanisms(cfg.Auth.Mechanisms); err != nil {
		return "", nil, nil, err
	}
	// DIGEST-MD5 keeps a hash per local domain: clients answer with the first realm offered.
	derived, err := sasl.Derive(norm, password, mechs, cfg.Domains...)
	if err != nil {
		return "", nil, nil, err
	}
	secrets = make([]accounts.Secret, 0, len(derived))
	for kind, v := range derived {
		secrets = append(secrets, accounts.Secret{Kind: kind, Value: v})
	}
	slices.SortFunc(secrets, func(a, b accounts.Secret) int { return strings.Compare(a.Kind, b.Kind) })
	return norm, mechs, secrets, nil
}

// UserDel removes an account. Its mailbox is left on disk.
func UserDel(ctx context.Context, cfg config.Config, addr string, w io.Writer) error {
	return withAccounts(cfg, addr, false, func(s accounts.Store) error {
		if err := s.Delete(ctx, addr); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAddress(addr)
		_, err := fmt.Fprintf(w, "deleted %s (its mailbox, if any, stays in %s)\n", norm, mailbox(cfg.Data, norm))
		return err
	})
}

// UserDisable disables an account (disabled) or enables it again: a disabled account keeps
// receiving mail but logs in with no mechanism.
func UserDisable(ctx context.Context, cfg config.Config, addr string, disabled bool, w io.Writer) error {
	return withAccounts(cfg, addr, false, func(s accounts.Store) error {
		if err := s.SetDisabled(ctx, addr, disabled); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAddress(addr)
		what := "enabled %s: it logs in again\n"
		if disabled {
			what = "disabled %s: it cannot log in, and still receives mail (tern user enable undoes it)\n"
		}
		_, err := fmt.Fprintf(w, what, norm)
		return err
	})
}

// mailbox is the Maildir of the account norm under data; without a data directory here (the
// store is elsewhere, PostgreSQL) it is where the mailbox is on each node.
func mailbox(data, norm string) string {
	at := strings.LastIndexByte(norm, '@')
	if _, err := os.Stat(data); err != nil {
		return filepath.Join("mail", norm[at+1:], norm[:at]) + " in each node's data directory"
	}
	return filepath.Join(mailPath(data), norm[at+1:], norm[:at])
}

// UserList prints the accounts, one a line, each with the mechanisms it can log in with: PLAIN
// and LOGIN check the password hash every account has; the others need their own secret, stored
// only when the password was set while the mechanism was configured. A mechanism configured now
// whose secret is missing is named, with the command that stores it.
func UserList(ctx context.Context, cfg config.Config, w io.Writer) error {
	return withAccounts(cfg, "", false, func(s accounts.Store) error {
		list, err := s.List(ctx)
		if err != nil {
			return err
		}
		width := 0
		for _, a := range list {
			width = max(width, len(a))
		}
		for _, a := range list {
			// A disabled account's secrets are out of reach: it logs in with nothing.
			if disabled, err := s.IsDisabled(ctx, a); err != nil {
				return err
			} else if disabled {
				if _, err := fmt.Fprintf(w, "%-*s  (disabled: tern user enable %s)\n", width, a, a); err != nil {
					return err
				}
				continue
			}
			has, missing, err := accountMechs(ctx, cfg, s, a)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("%-*s  %s", width, a, strings.Join(has, " "))
			if len(missing) > 0 {
				line += fmt.Sprintf("  (no secret for %s: tern user passwd %s)", strings.Join(missing, " "), a)
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
		return nil
	})
}

// UserShow prints one account: the mechanisms it can log in with, the configured ones it cannot
// (and what to run), and where its mailbox is.
func UserShow(ctx context.Context, cfg config.Config, addr string, w io.Writer) error {
	return withAccounts(cfg, addr, false, func(s accounts.Store) error {
		norm, err := accounts.NormalizeAddress(addr)
		if err != nil {
			return err
		}
		ok, err := s.Exists(ctx, norm)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("%w: %s", accounts.ErrNotFound, norm)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "account:     %s\n", norm)
		if disabled, err := s.IsDisabled(ctx, norm); err != nil {
			return err
		} else if disabled {
			// Its secrets are out of reach: it logs in with nothing.
			fmt.Fprintf(&b, "disabled:    it cannot log in, and still receives mail (tern user enable %s)\n", norm)
			fmt.Fprintf(&b, "mailbox:     %s\n", mailbox(cfg.Data, norm))
			_, err = io.WriteString(w, b.String())
			return err
		}
		has, missing, err := accountMechs(ctx, cfg, s, norm)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "secrets for: %s\n", strings.Join(has, " "))
		if len(missing) > 0 {
			fmt.Fprintf(&b, "missing:     %s (configured, but the password was set before: tern user passwd %s stores them)\n",
				strings.Join(missing, " "), norm)
		}
		fmt.Fprintf(&b, "mailbox:     %s\n", mailbox(cfg.Data, norm))
		_, err = io.WriteString(w, b.String())
		return err
	})
}

// accountMechs returns the mechanisms acct can log in with, and those of the configured ones it
// cannot for want of a stored secret. GSSAPI needs none (the KDC vouches for the client).
func accountMechs(ctx context.Context, cfg config.Config, s accounts.Store, acct string) (has, missing []string, err error) {
	configured, err := config.ParseMechanisms(cfg.Auth.Mechanisms)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range append(config.DefaultMechanisms(), config.LegacyMechanisms()...) {
		if kind := sasl.SecretKind(m); kind != "" {
			_, err := s.Secret(ctx, acct, kind)
			switch {
			case errors.Is(err, accounts.ErrNotFound):
				if slices.Contains(configured, m) {
					missing = append(missing, m)
				}
				continue
			case err != nil:
				return nil, nil, err
			}
		}
		has = append(has, m)
	}
	return has, missing, nil
}
