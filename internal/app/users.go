package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/sasl"
)

// OpenAccounts opens the account store of the configured data directory, creating it if needed.
// It may be used while a server runs on the same directory.
func OpenAccounts(cfg config.Config) (accounts.Store, error) {
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, err
	}
	if err := safeio.MkdirAll(data, 0o700); err != nil {
		return nil, explainData(data, "cannot create the data directory", err)
	}
	s, err := sqlite.Open(accountsPath(data))
	if err != nil {
		return nil, dataError(data, "cannot open the account database", err)
	}
	return s, nil
}

// userError words an error of a tern user command about addr for the administrator.
func userError(cfg config.Config, addr string, err error) error {
	switch {
	case err == nil:
		return nil
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
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	data, _ := filepath.Abs(cfg.Data)
	return dataError(data, "the account database failed", err)
}

// UserAdd creates an account; it warns on w when the address is not in a local domain, since
// such an account would never receive mail.
func UserAdd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	return userError(cfg, addr, userAdd(ctx, cfg, addr, password, w))
}

func userAdd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	s, err := OpenAccounts(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	norm, mechs, secrets, err := deriveSecrets(cfg, addr, password)
	if err != nil {
		return err
	}
	if err := s.Add(ctx, norm, password, secrets...); err != nil {
		return err
	}
	fmt.Fprintf(w, "added %s (secrets for %s)\n", norm, strings.Join(mechs, " "))
	domain := norm[strings.LastIndexByte(norm, '@')+1:]
	if !slices.Contains(cfg.Domains, domain) {
		fmt.Fprintf(w, "note: %s is not a local domain (now: %s); start the server with --domain %s to receive its mail\n",
			domain, strings.Join(cfg.Domains, ", "), domain)
	}
	return nil
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
	return userError(cfg, addr, userDel(ctx, cfg, addr, w))
}

func userDel(ctx context.Context, cfg config.Config, addr string, w io.Writer) error {
	s, err := OpenAccounts(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Delete(ctx, addr); err != nil {
		return err
	}
	norm, _ := accounts.NormalizeAddress(addr)
	fmt.Fprintf(w, "deleted %s (its mailbox, if any, stays in %s)\n", norm,
		filepath.Join(mailPath(cfg.Data), norm[strings.LastIndexByte(norm, '@')+1:]))
	return nil
}

// UserPasswd changes an account's password.
func UserPasswd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	return userError(cfg, addr, userPasswd(ctx, cfg, addr, password, w))
}

func userPasswd(ctx context.Context, cfg config.Config, addr, password string, w io.Writer) error {
	s, err := OpenAccounts(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	norm, mechs, secrets, err := deriveSecrets(cfg, addr, password)
	if err != nil {
		return err
	}
	if err := s.SetPassword(ctx, norm, password, secrets...); err != nil {
		return err
	}
	fmt.Fprintf(w, "password changed for %s (secrets for %s)\n", norm, strings.Join(mechs, " "))
	return nil
}

// UserList prints the accounts, one per line.
func UserList(ctx context.Context, cfg config.Config, w io.Writer) error {
	s, err := OpenAccounts(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.List(ctx)
	if err != nil {
		return userError(cfg, "", err)
	}
	for _, a := range list {
		fmt.Fprintln(w, a)
	}
	return nil
}
