// Package webadmin is the admin web interface of a running server (--admin, admin.listen): an
// http.Handler with its pages (overview, queue, accounts), its logins and sessions. It owns
// the HTTP side only: the queue is changed through admin.Handle, as tern queue changes it, and
// the accounts through the Accounts the server gives it; app serves the handler on its
// listener (TLS or not).
//
// # Security
//
//   - Logins are the admin store's (tern admin add), never mail accounts; a failed login counts
//     in a policy.AuthLimiter of its own, as a failed AUTH does (delays, then a block: 429).
//   - A session is a random token in a cookie that is HttpOnly, SameSite=Strict, Secure over
//     TLS, and lasts SessionTimeout; sessions are in memory, so a restart logs everyone out.
//   - Every form carries a CSRF token (the session's; before login, one in a cookie of its own)
//     and a POST without the right one is refused with 403; cross-origin POSTs are refused too
//     (http.CrossOriginProtection).
//   - The pages load nothing from outside (embedded CSS, no script) and forbid it by their
//     Content-Security-Policy; every action is logged with the admin's name.
package webadmin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/policy"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Admins checks admin logins (accounts.AdminStore).
type Admins interface {
	VerifyAdmin(ctx context.Context, name, password string) (bool, error)
	// AdminStamp changes when the admin's password changes, and is "" once it is deleted: a
	// session whose stamp differs ends at its next request.
	AdminStamp(ctx context.Context, name string) (string, error)
}

// Options configure a Handler.
type Options struct {
	// Admins checks logins.
	Admins Admins
	// Queue is the server's queue, changed through admin.Handle.
	Queue admin.Queue
	// Accounts manages the mail accounts and aliases; nil: no accounts page.
	Accounts Accounts
	// Status reports the server's figures for the overview; nil: the queue's only.
	Status func() Status
	// Domains tells about the local domains, their DKIM keys and DNS records; nil: no
	// domains page.
	Domains Domains
	// Activity follows the server's log: the overview's graphs, the live sessions and the
	// recent log pages. Nil: none of them.
	Activity *Activity
	// Limiter throttles failed logins.
	Limiter *policy.AuthLimiter
	// Secure marks the session cookie Secure: the pages are served over TLS.
	Secure bool
	// SessionTimeout is how long a session lasts after login.
	SessionTimeout time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Logger gets one line per login and per action, with the admin's name.
	Logger *slog.Logger
}

// Handler is the admin web interface.
type Handler struct {
	opts     Options
	now      func() time.Time
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions *sessions
	mux      *http.ServeMux
	cop      *http.CrossOriginProtection
}

// New returns the handler opts describe.
func New(opts Options) (*Handler, error) {
	h := &Handler{opts: opts, now: opts.Now, log: opts.Logger}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if opts.Admins == nil || opts.Queue == nil || opts.Limiter == nil {
		return nil, errors.New("webadmin: Admins, Queue and Limiter are needed")
	}
	if opts.SessionTimeout <= 0 {
		return nil, fmt.Errorf("webadmin: session timeout %v: want a positive duration", opts.SessionTimeout)
	}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	h.sessions = newSessions(h.now, opts.SessionTimeout)
	h.cop = http.NewCrossOriginProtection()
	h.mux = http.NewServeMux()
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("webadmin: %w", err)
	}
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.authed(h.logout))
	h.mux.HandleFunc("GET /{$}", h.authed(h.overview))
	h.mux.HandleFunc("GET /queue", h.authed(h.queuePage))
	h.mux.HandleFunc("GET /queue/message", h.authed(h.messagePage))
	h.mux.HandleFunc("POST /queue", h.authed(h.queueAction))
	if opts.Accounts != nil {
		h.routeAccounts()
	}
	if opts.Domains != nil {
		h.routeDomains()
	}
	if opts.Activity != nil {
		h.mux.HandleFunc("GET /sessions", h.authed(h.sessionsPage))
		h.mux.HandleFunc("GET /log", h.authed(h.logPage))
	}
	return h, nil
}

// ServeHTTP serves a request with the headers every answer carries, and turns a panic into a
// 500 (logged with its stack) instead of a dropped connection.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("webadmin: panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	hd := w.Header()
	// Nothing from outside, no script, no framing (clickjacking), no referrer leaking a
	// queue id to another site.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if err := h.cop.Check(r); err != nil {
		h.forbidden(w, r, "cross-origin request refused")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// page is what every page template gets.
type page struct {
	Title string
	Admin string // the admin logged in; "" on the login page
	CSRF  string
	Nav   string // the page's nav entry
	// Pages lists the optional pages served.
	Accounts, Domains, Activity bool
	Flash                       []string
	Error                       string
	Data                        any
}

// render writes the page name with status.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p page) {
	p.Accounts, p.Domains, p.Activity = h.opts.Accounts != nil, h.opts.Domains != nil, h.opts.Activity != nil
	t := h.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		h.log.Error("webadmin: rendering", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String())) // the client went away: nothing to do
}

// forbidden answers 403 with why.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, why string) {
	h.log.Warn("webadmin: refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", why)
	h.render(w, http.StatusForbidden, "error", page{Title: "Forbidden", Error: why + ": reload the page and try again"})
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"join": strings.Join,
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("webadmin: %w", err)
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("webadmin: %w", err)
		}
		pages[base] = t
	}
	return pages, nil
}
