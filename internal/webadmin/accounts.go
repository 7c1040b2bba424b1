package webadmin

import (
	"context"
	"net/http"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
)

// Accounts manages the mail accounts and aliases for the accounts page; the server backs it
// with the account store and the configured mechanisms, as tern user and tern alias do. Its
// errors are worded for the admin.
type Accounts interface {
	// List returns every account with the mechanisms it can log in with.
	List(ctx context.Context) ([]Account, error)
	// Add makes an account; SetPassword changes its password (and its mechanisms' secrets).
	Add(ctx context.Context, addr, password string) error
	SetPassword(ctx context.Context, addr, password string) error
	// Delete removes an account (its mailbox stays).
	Delete(ctx context.Context, addr string) error
	// SetDisabled disables an account (it keeps receiving mail, but cannot log in) or enables
	// it again.
	SetDisabled(ctx context.Context, addr string, disabled bool) error
	// Aliases lists the aliases; AddAlias adds targets to one, DeleteAlias removes some (all
	// when none are given).
	Aliases(ctx context.Context) ([]accounts.Alias, error)
	AddAlias(ctx context.Context, addr string, targets []string) error
	DeleteAlias(ctx context.Context, addr string, targets []string) error
}

// Account is an account as the accounts page lists it.
type Account struct {
	Addr string
	// Mechanisms are those it can log in with; Missing, those configured that it cannot (its
	// password was set before they were).
	Mechanisms, Missing []string
	// Disabled accounts cannot log in.
	Disabled bool
}

// accountsData is the accounts page's.
type accountsData struct {
	Accounts []Account
	Aliases  []accounts.Alias
}

func (h *Handler) routeAccounts() {
	h.mux.HandleFunc("GET /accounts", h.authed(h.accountsPage))
	h.mux.HandleFunc("POST /accounts", h.authed(h.accountAction))
	h.mux.HandleFunc("POST /aliases", h.authed(h.aliasAction))
}

// accountsPage lists the accounts and aliases.
func (h *Handler) accountsPage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	var d accountsData
	p := pageFor(s, "Accounts", "accounts", &d)
	var err error
	if d.Accounts, err = h.opts.Accounts.List(r.Context()); err == nil {
		d.Aliases, err = h.opts.Accounts.Aliases(r.Context())
	}
	if err != nil {
		p.Error = err.Error()
	}
	h.render(w, http.StatusOK, "accounts", p)
}

// accountAction adds an account, changes a password or deletes an account.
func (h *Handler) accountAction(w http.ResponseWriter, r *http.Request, s session, tok string) {
	action, addr, pw := r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("address")), r.PostFormValue("password")
	acc := h.opts.Accounts
	var err error
	switch action {
	case "add":
		err = acc.Add(r.Context(), addr, pw)
	case "passwd":
		err = acc.SetPassword(r.Context(), addr, pw)
	case "delete":
		err = acc.Delete(r.Context(), addr)
	case "disable", "enable":
		err = acc.SetDisabled(r.Context(), addr, action == "disable")
	default:
		h.sessions.addFlash(tok, "Unknown action.")
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	h.done(r, s, tok, "account "+action, addr, err)
	http.Redirect(w, r, "/accounts", http.StatusSeeOther)
}

// aliasAction adds targets to an alias or removes some.
func (h *Handler) aliasAction(w http.ResponseWriter, r *http.Request, s session, tok string) {
	action, addr := r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("alias"))
	targets := strings.FieldsFunc(r.PostFormValue("targets"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' })
	var err error
	switch action {
	case "add":
		err = h.opts.Accounts.AddAlias(r.Context(), addr, targets)
	case "delete":
		err = h.opts.Accounts.DeleteAlias(r.Context(), addr, targets)
	default:
		h.sessions.addFlash(tok, "Unknown action.")
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	h.done(r, s, tok, "alias "+action, addr+" "+strings.Join(targets, ","), err)
	http.Redirect(w, r, "/accounts#aliases", http.StatusSeeOther)
}

// done logs an action of s's admin on what, and notes its outcome for the next page.
func (h *Handler) done(r *http.Request, s session, tok, action, what string, err error) {
	if err != nil {
		h.log.Warn("webadmin: "+action+" failed", "admin", s.admin, "remote", clientIP(r), "target", what, "err", err)
		h.sessions.addFlash(tok, action+" "+what+": "+err.Error())
		return
	}
	h.log.Info("webadmin: "+action, "admin", s.admin, "remote", clientIP(r), "target", what)
	h.sessions.addFlash(tok, action+" "+what+": done.")
}
