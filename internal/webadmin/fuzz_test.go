package webadmin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzForms posts any form, with a live session and its CSRF token, to every route that takes
// one, and to a few that do not: whatever the form holds, the answer is never a 500 (the
// handler's recover turns a panic into one).
func FuzzForms(f *testing.F) {
	fx := newFixture(f, false)
	id := fx.add("a@example.test", "x@example.org")
	b := fx.loggedIn()
	var cookie *http.Cookie
	u, _ := url.Parse(fx.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	csrf := b.csrf("/queue")
	// Not /logout: it would end the session the other inputs need.
	paths := []string{"/queue", "/accounts", "/aliases", "/login", "/queue/message", "/domains/records", "/"}
	for _, seed := range []struct {
		path byte
		form string
	}{
		{0, "action=hold&id=" + id},
		{0, "action=delete&id=" + id + "&id=0000NOSUCH&back=/queue?state=held"},
		{0, "action=flush&back=//evil.example/"},
		{1, "action=add&address=bob@example.test&password=x"},
		{1, "action=passwd&address=%00&password="},
		{2, "action=add&alias=@example.test&targets=,,%0d%0a"},
		{3, "name=alice&password=right"},
		{0, "action=%zz&id"},
	} {
		f.Add(seed.path, seed.form)
	}
	f.Fuzz(func(t *testing.T, path byte, form string) {
		p := paths[int(path)%len(paths)]
		req := httptest.NewRequest("POST", p, strings.NewReader(form+"&csrf="+csrf))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Errorf("POST %s %q: %d\n%s", p, form, w.Code, w.Body.String())
		}
	})
}
