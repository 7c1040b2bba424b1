package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
)

// AdminAdd creates a login of the admin web interface (tern admin add).
func AdminAdd(ctx context.Context, cfg config.Config, name, password string, w io.Writer) error {
	return withAdmins(cfg, name, true, func(s accounts.Store) error {
		if err := s.AddAdmin(ctx, name, password); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAdmin(name)
		note := ""
		if cfg.Admin.Listen == "" {
			note = " (admin.listen is not set in this configuration: the admin web interface is served only with --admin HOST:PORT or admin.listen)"
		}
		_, err := fmt.Fprintf(w, "added admin %s%s\n", norm, note)
		return err
	})
}

// AdminPasswd changes an admin's password; the web sessions of that admin end at their next
// request.
func AdminPasswd(ctx context.Context, cfg config.Config, name, password string, w io.Writer) error {
	return withAdmins(cfg, name, false, func(s accounts.Store) error {
		if err := s.SetAdminPassword(ctx, name, password); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAdmin(name)
		_, err := fmt.Fprintf(w, "password changed for admin %s\n", norm)
		return err
	})
}

// AdminDel removes an admin login.
func AdminDel(ctx context.Context, cfg config.Config, name string, w io.Writer) error {
	return withAdmins(cfg, name, false, func(s accounts.Store) error {
		if err := s.DeleteAdmin(ctx, name); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAdmin(name)
		_, err := fmt.Fprintf(w, "deleted admin %s\n", norm)
		return err
	})
}

// AdminList prints the admin logins, one a line.
func AdminList(ctx context.Context, cfg config.Config, w io.Writer) error {
	return withAdmins(cfg, "", false, func(s accounts.Store) error {
		names, err := s.Admins(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			_, err := fmt.Fprintln(w, "no admins (tern admin add NAME makes one)")
			return err
		}
		_, err = fmt.Fprintln(w, strings.Join(names, "\n"))
		return err
	})
}

// withAdmins runs f on the account store and words its error about the admin name.
func withAdmins(cfg config.Config, name string, create bool, f func(s accounts.Store) error) error {
	return withAccounts(cfg, name, create, func(s accounts.Store) error { return adminError(cfg, name, f(s)) })
}

// adminError words an error of a tern admin command about name for the administrator.
func adminError(cfg config.Config, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, accounts.ErrExists):
		return errorf(err, "there is an admin %s already (tern admin passwd %s changes its password)", name, name)
	case errors.Is(err, accounts.ErrNotFound):
		return errorf(err, "there is no admin %s (tern admin list shows them)", name)
	case errors.Is(err, accounts.ErrBadAdmin):
		return errorf(err, "not an admin name: %s", strings.TrimPrefix(err.Error(), accounts.ErrBadAdmin.Error()+" "))
	case errors.Is(err, accounts.ErrEmptyPassword):
		return errorf(err, "the password is empty: an admin needs one")
	}
	data, _ := filepath.Abs(cfg.Data)
	return dataError(data, "the account database failed", err)
}
