package webadmin

import (
	"crypto/rand"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// Cookie names. The session's is __Host- prefixed over TLS, which the browser only accepts
// Secure, from this very host and for path /.
const (
	sessionCookie = "tern_admin"
	loginCookie   = "tern_login" // the CSRF token of the login form
	csrfField     = "csrf"
)

// maxSessions bounds the sessions kept: logins are throttled, so only admins who log in over
// and over without logging out reach it; the oldest session then goes.
const maxSessions = 1000

// session is a logged-in admin.
type session struct {
	admin   string
	stamp   string // the admin's accounts.AdminStamp at login: the session ends when it changes
	csrf    string // the token every form of the session carries
	expires time.Time
	flash   []string // what the last action did, shown once by the next page
}

// sessions are the sessions by token.
type sessions struct {
	now     func() time.Time
	timeout time.Duration

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(now func() time.Time, timeout time.Duration) *sessions {
	return &sessions{now: now, timeout: timeout, m: make(map[string]*session)}
}

// token returns a new random token: 260 bits (two of rand.Text's), as unguessable as a
// session must be.
func token() string { return rand.Text() + rand.Text() }

// start makes a session for admin, whose password has the stamp, and returns its token.
func (ss *sessions) start(admin, stamp string) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	var oldest string
	for t, s := range ss.m {
		switch {
		case !now.Before(s.expires):
			delete(ss.m, t)
		case oldest == "" || s.expires.Before(ss.m[oldest].expires):
			oldest = t
		}
	}
	if len(ss.m) >= maxSessions {
		delete(ss.m, oldest)
	}
	t := token()
	ss.m[t] = &session{admin: admin, stamp: stamp, csrf: token(), expires: now.Add(ss.timeout)}
	return t
}

// get returns a copy of the session of token, with its flash taken; ok false when there is
// none or it expired.
func (ss *sessions) get(token string) (s session, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p := ss.m[token]
	if p == nil {
		return session{}, false
	}
	if !ss.now().Before(p.expires) {
		delete(ss.m, token)
		return session{}, false
	}
	s = *p
	p.flash = nil
	return s, true
}

// maxFlash bounds the notes kept for the next page: an action on a thousand messages that
// all fail is summed up by its first notes and its count.
const maxFlash = 20

// addFlash notes msg for the next page of the session.
func (ss *sessions) addFlash(token string, msg ...string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p := ss.m[token]
	if p == nil {
		return
	}
	for _, m := range msg {
		switch {
		case len(p.flash) < maxFlash:
			p.flash = append(p.flash, m)
		case len(p.flash) == maxFlash:
			p.flash = append(p.flash, "(more not shown: the log has them all)")
		}
	}
}

// end forgets the session of token.
func (ss *sessions) end(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, token)
}

// cookie returns a cookie for this server: HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it), Secure over TLS.
func (h *Handler) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: h.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.opts.Secure}
}

func (h *Handler) cookieName(name string) string {
	if h.opts.Secure {
		return "__Host-" + name
	}
	return name
}

// sameToken compares a form's token with the expected one in constant time; an empty one never
// matches.
func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// authedFunc is a handler for a logged-in admin: s is the session, tok its token.
type authedFunc func(w http.ResponseWriter, r *http.Request, s session, tok string)

// authed lets through requests of a live session (a POST only with the session's CSRF token)
// and sends the others to the login page.
func (h *Handler) authed(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var tok string
		if c, err := r.Cookie(h.cookieName(sessionCookie)); err == nil {
			tok = c.Value
		}
		s, ok := h.sessions.get(tok)
		if ok && !h.stillAdmin(r, s) {
			h.sessions.end(tok)
			ok = false
		}
		if !ok {
			if r.Method != http.MethodGet {
				h.forbidden(w, r, "not logged in, or the session expired")
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !sameToken(r.PostFormValue(csrfField), s.csrf) {
				h.forbidden(w, r, "the form's CSRF token is missing or wrong")
				return
			}
		}
		next(w, r, s, tok)
	}
}

// stillAdmin reports whether the admin of s is still an admin with the password it logged in
// with: deleting an admin (tern admin del) or changing its password ends its sessions. When the
// store cannot say, the session goes on: the store being down is no reason to lock the admins
// out of the queue.
func (h *Handler) stillAdmin(r *http.Request, s session) bool {
	stamp, err := h.opts.Admins.AdminStamp(r.Context(), s.admin)
	if err != nil {
		h.log.Warn("webadmin: checking the admin of a session", "admin", s.admin, "err", err)
		return true
	}
	return stamp != "" && stamp == s.stamp
}

// maxForm bounds a form's size: the largest is a list of queue ids.
const maxForm = 1 << 20

// loginPage shows the login form, with a fresh CSRF token in its cookie.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.showLogin(w, http.StatusOK, "")
}

func (h *Handler) showLogin(w http.ResponseWriter, status int, msg string) {
	t := token()
	http.SetCookie(w, h.cookie(loginCookie, t, 3600))
	h.render(w, status, "login", page{Title: "Log in", CSRF: t, Error: msg})
}

// login checks a login, throttled as AUTH is: a client that failed too often is refused
// (429) before its password is checked, and each failure is answered after a delay that grows.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	c, err := r.Cookie(h.cookieName(loginCookie))
	if err != nil || !sameToken(r.PostFormValue(csrfField), c.Value) {
		h.forbidden(w, r, "the login form's CSRF token is missing or wrong")
		return
	}
	name, password := r.PostFormValue("name"), r.PostFormValue("password")
	if norm, err := accounts.NormalizeAdmin(name); err == nil {
		name = norm // one spelling in the logs and the throttle's counts
	} else if len(name) > 64 {
		name = name[:64] // no admin's name; it goes into the log
	}
	ip := clientIP(r)
	lim := h.opts.Limiter
	if _, ok := lim.Allow(ip); !ok {
		h.log.Warn("webadmin: login refused: too many failures", "remote", ip, "admin", name)
		h.showLogin(w, http.StatusTooManyRequests, "Too many failed logins from your address: try again later.")
		return
	}
	ok, err := h.opts.Admins.VerifyAdmin(r.Context(), name, password)
	if err != nil {
		h.log.Error("webadmin: checking a login", "admin", name, "err", err)
		h.showLogin(w, http.StatusServiceUnavailable, "The account store failed: try again later.")
		return
	}
	if ok {
		if reason, allowed := lim.Succeeded(ip, name); !allowed {
			h.log.Warn("webadmin: login refused", "remote", ip, "admin", name, "reason", reason)
			ok = false
		}
	}
	if !ok {
		delay, _, blocked := lim.Failed(ip, name)
		h.log.Warn("webadmin: login failed", "remote", ip, "admin", name, "blocked", blocked)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		if blocked {
			h.showLogin(w, http.StatusTooManyRequests, "Too many failed logins from your address: try again later.")
			return
		}
		h.showLogin(w, http.StatusUnauthorized, "Wrong name or password.")
		return
	}
	stamp, err := h.opts.Admins.AdminStamp(r.Context(), name)
	if err != nil || stamp == "" { // deleted, or the store failed, since VerifyAdmin
		h.log.Warn("webadmin: login refused: the admin's stamp", "admin", name, "err", err)
		h.showLogin(w, http.StatusServiceUnavailable, "The account store did not answer: try again.")
		return
	}
	tok := h.sessions.start(name, stamp)
	h.log.Info("webadmin: login", "remote", ip, "admin", name)
	http.SetCookie(w, h.cookie(sessionCookie, tok, int(h.opts.SessionTimeout/time.Second)))
	http.SetCookie(w, h.cookie(loginCookie, "", -1))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s session, tok string) {
	h.sessions.end(tok)
	h.log.Info("webadmin: logout", "remote", clientIP(r), "admin", s.admin)
	http.SetCookie(w, h.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// clientIP is the address the request came from. Headers such as X-Forwarded-For are not
// trusted: any client could set them to escape the throttle.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// pageFor is the page of session s.
func pageFor(s session, title, nav string, data any) page {
	return page{Title: title, Admin: s.admin, CSRF: s.csrf, Nav: nav, Flash: s.flash, Data: data}
}
