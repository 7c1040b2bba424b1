package webadmin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/testutil"
)

// fakeAdmins knows one admin, alice, with the password "right", until gone is set; its stamp
// changes with changed, as when its password is changed.
type fakeAdmins struct{ gone, changed *atomic.Bool }

func (a fakeAdmins) VerifyAdmin(_ context.Context, name, pw string) (bool, error) {
	return !a.gone.Load() && strings.EqualFold(name, "alice") && pw == "right", nil
}

func (a fakeAdmins) AdminStamp(_ context.Context, name string) (string, error) {
	switch {
	case a.gone.Load() || !strings.EqualFold(name, "alice"):
		return "", nil
	case a.changed.Load():
		return "stamp2", nil
	}
	return "stamp1", nil
}

// stuck fails every delivery for now, so that messages stay queued.
type stuck struct{}

func (stuck) Deliver(context.Context, *envelope.Envelope, int, io.Reader) error {
	return &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a handler on a real queue, served on loopback.
type fixture struct {
	t     testing.TB
	srv   *httptest.Server
	h     *Handler
	q     *queue.Queue
	logs  *testutil.SyncBuffer
	clock *clock
	accts *fakeAccounts
	act   *Activity
	// aliceGone deletes alice; aliceChanged changes her password.
	aliceGone, aliceChanged atomic.Bool
}

func newFixture(t testing.TB, secure bool) *fixture {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{Deliverer: stuck{}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("closing the queue: %v", err)
		}
	})
	f := &fixture{t: t, q: q, logs: &testutil.SyncBuffer{}, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		accts: &fakeAccounts{}}
	f.act = NewActivity(f.clock.now)
	log := slog.New(f.act.Handler(slog.NewTextHandler(f.logs, nil)))
	h, err := New(Options{
		Admins:   fakeAdmins{gone: &f.aliceGone, changed: &f.aliceChanged},
		Queue:    q,
		Accounts: f.accts,
		Status:   func() Status { return Status{Sessions: 7} },
		Activity: f.act,
		Domains:  fakeDomains{},
		// Delays of a millisecond: the test checks what is refused, not how slowly.
		Limiter: policy.NewAuthLimiter(policy.AuthLimits{MaxFailures: 3, BaseDelay: time.Millisecond,
			MaxDelay: time.Millisecond, Now: f.clock.now}),
		Secure:         secure,
		SessionTimeout: time.Hour,
		Now:            f.clock.now,
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// add queues a message from from to rcpt and returns its id.
func (f *fixture) add(from, rcpt string) string {
	f.t.Helper()
	w, err := f.q.NewMessage()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.WriteString(w, "Subject: to "+rcpt+"\r\n\r\nhello <b>there</b>\r\n"); err != nil {
		f.t.Fatal(err)
	}
	if err := w.Commit(context.Background(), &envelope.Envelope{From: from, Received: time.Now(),
		Rcpts: []envelope.Recipient{{Addr: rcpt}}}); err != nil {
		f.t.Fatal(err)
	}
	return w.ID()
}

// browser is a client with its own cookies that does not follow redirects.
type browser struct {
	f *fixture
	c *http.Client
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &browser{f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// response is what a request got.
type response struct {
	code     int
	location string
	body     string
	cookies  []*http.Cookie
}

func (b *browser) do(method, path string, form url.Values) response {
	b.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.f.srv.URL+path, body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return response{code: res.StatusCode, location: res.Header.Get("Location"), body: string(out), cookies: res.Cookies()}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.f.t.Helper()
	r := b.do("GET", path, nil)
	m := csrfRE.FindStringSubmatch(r.body)
	if r.code != http.StatusOK || m == nil {
		b.f.t.Fatalf("GET %s: %d, no CSRF token in\n%s", path, r.code, r.body)
	}
	return m[1]
}

// login logs in with name and pw and returns the answer.
func (b *browser) login(name, pw string) response {
	b.f.t.Helper()
	return b.do("POST", "/login", url.Values{"csrf": {b.csrf("/login")}, "name": {name}, "password": {pw}})
}

// loggedIn is a browser logged in as alice.
func (f *fixture) loggedIn() *browser {
	f.t.Helper()
	b := f.browser()
	if r := b.login("alice", "right"); r.code != http.StatusSeeOther || r.location != "/" {
		f.t.Fatalf("login: %d %q\n%s", r.code, r.location, r.body)
	}
	return b
}

// post submits a form of the page at page to path, with the page's CSRF token.
func (b *browser) post(page, path string, form url.Values) response {
	b.f.t.Helper()
	form.Set("csrf", b.csrf(page))
	return b.do("POST", path, form)
}

func TestLogin(t *testing.T) {
	f := newFixture(t, false)
	b := f.browser()
	if r := b.do("GET", "/queue", nil); r.code != http.StatusSeeOther || r.location != "/login" {
		t.Errorf("GET /queue before login: %d %q, want 303 to /login", r.code, r.location)
	}
	for _, tc := range []struct {
		name, pw string
		code     int
	}{
		{"alice", "wrong", http.StatusUnauthorized},
		{"bob", "right", http.StatusUnauthorized},
		{"ALICE", "right", http.StatusSeeOther},
	} {
		r := b.login(tc.name, tc.pw)
		if r.code != tc.code {
			t.Errorf("login %s/%s: %d, want %d\n%s", tc.name, tc.pw, r.code, tc.code, r.body)
		}
		if r.code == http.StatusSeeOther {
			c := r.cookies[slices.IndexFunc(r.cookies, func(c *http.Cookie) bool { return c.Name == sessionCookie })]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
			}
		}
	}
	r := b.do("GET", "/", nil)
	if r.code != http.StatusOK || !strings.Contains(r.body, "Log out alice") || !strings.Contains(r.body, `<dd id="sessions">7</dd>`) {
		t.Errorf("overview after login: %d\n%s", r.code, r.body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		res, err := http.Get(f.srv.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	wantLog(t, f.logs.String(), `msg="webadmin: login" remote=127.0.0.1 admin=alice`)

	// The session ends at its timeout, and at logout.
	f.clock.advance(time.Hour)
	if r := b.do("GET", "/", nil); r.code != http.StatusSeeOther {
		t.Errorf("GET / after the session timeout: %d, want 303", r.code)
	}
	// A deleted admin's sessions end at their next request.
	b = f.loggedIn()
	f.aliceGone.Store(true)
	if r := b.do("GET", "/", nil); r.code != http.StatusSeeOther {
		t.Errorf("GET / after the admin was deleted: %d, want 303", r.code)
	}
	f.aliceGone.Store(false)
	// So does every session of an admin whose password was changed (tern admin passwd).
	b = f.loggedIn()
	f.aliceChanged.Store(true)
	if r := b.do("GET", "/", nil); r.code != http.StatusSeeOther {
		t.Errorf("GET / after the password was changed: %d, want 303", r.code)
	}
	b = f.loggedIn() // a login with the new password lives on
	if r := b.do("GET", "/", nil); r.code != http.StatusOK {
		t.Errorf("GET / after logging in again: %d, want 200", r.code)
	}
	if r := b.post("/", "/logout", url.Values{}); r.code != http.StatusSeeOther || r.location != "/login" {
		t.Errorf("logout: %d %q", r.code, r.location)
	}
	if r := b.do("GET", "/", nil); r.code != http.StatusSeeOther {
		t.Errorf("GET / after logout: %d, want 303", r.code)
	}
}

func TestSecureCookie(t *testing.T) {
	f := newFixture(t, true)
	// httptest serves plain HTTP; the jar would not send back Secure cookies, so only the
	// cookies as set are checked.
	r := f.browser().do("GET", "/login", nil)
	if len(r.cookies) != 1 || r.cookies[0].Name != "__Host-"+loginCookie || !r.cookies[0].Secure || !r.cookies[0].HttpOnly {
		t.Errorf("login page cookies over TLS: %+v, want one __Host- cookie, Secure and HttpOnly", r.cookies)
	}
}

// TestCSRF: every POST without the form's token is refused with 403, and changes nothing.
func TestCSRF(t *testing.T) {
	f := newFixture(t, false)
	id := f.add("a@example.test", "x@example.org")
	b := f.loggedIn()
	other := f.loggedIn() // another session: its token is not b's
	otherToken := other.csrf("/queue")
	for _, tc := range []struct {
		name, path string
		form       url.Values
	}{
		{"hold without token", "/queue", url.Values{"action": {"hold"}, "id": {id}}},
		{"hold with another session's token", "/queue", url.Values{"action": {"hold"}, "id": {id}, "csrf": {otherToken}}},
		{"add account without token", "/accounts", url.Values{"action": {"add"}, "address": {"c@example.test"}, "password": {"x"}}},
		{"alias without token", "/aliases", url.Values{"action": {"add"}, "alias": {"a@example.test"}, "targets": {"c@example.test"}}},
		{"logout without token", "/logout", url.Values{}},
	} {
		if r := b.do("POST", tc.path, tc.form); r.code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, r.code)
		}
	}
	if r := f.browser().do("POST", "/login", url.Values{"name": {"alice"}, "password": {"right"}}); r.code != http.StatusForbidden {
		t.Errorf("login without token: %d, want 403", r.code)
	}
	if r := f.browser().do("POST", "/queue", url.Values{"action": {"hold"}, "id": {id}, "csrf": {otherToken}}); r.code != http.StatusForbidden {
		t.Errorf("hold without a session: %d, want 403", r.code)
	}
	if it, _ := f.q.Show(id); it.Envelope.Held {
		t.Error("a refused form held the message")
	}
	if len(f.accts.calls) != 0 {
		t.Errorf("a refused form changed accounts: %q", f.accts.calls)
	}
	wantLog(t, f.logs.String(), `reason="the form's CSRF token is missing or wrong"`)
}

// TestThrottle: failed logins from one address are answered 401 until the limit, then 429,
// the right password included.
func TestThrottle(t *testing.T) {
	f := newFixture(t, false)
	b := f.browser()
	for i, want := range []int{401, 401, 429, 429} {
		if r := b.login("alice", "wrong"); r.code != want {
			t.Errorf("failure %d: %d, want %d", i+1, r.code, want)
		}
	}
	if r := b.login("alice", "right"); r.code != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed logins") {
		t.Errorf("right password while blocked: %d, want 429\n%s", r.code, r.body)
	}
	f.clock.advance(policy.DefaultAuthBlock)
	if r := b.login("alice", "right"); r.code != http.StatusSeeOther {
		t.Errorf("right password after the block: %d, want 303", r.code)
	}
	wantLog(t, f.logs.String(), `msg="webadmin: login refused: too many failures" remote=127.0.0.1 admin=alice`)
}

func TestQueueActions(t *testing.T) {
	f := newFixture(t, false)
	m1 := f.add("a@example.test", "x@one.example")
	m2 := f.add("b@example.test", "y@two.example")
	m3 := f.add("", "z@one.example")
	b := f.loggedIn()

	r := b.do("GET", "/queue", nil)
	for _, id := range []string{m1, m2, m3} {
		if !strings.Contains(r.body, `id="msg-`+id+`"`) {
			t.Errorf("queue page lacks %s", id)
		}
	}
	list := func(query string) []string {
		var ids []string
		for _, m := range regexp.MustCompile(`<tr id="msg-([^"]+)"`).FindAllStringSubmatch(b.do("GET", "/queue?"+query, nil).body, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	held := func(id string) bool { it, _ := f.q.Show(id); return it.Envelope.Held }
	exists := func(id string) bool { _, err := f.q.Show(id); return err == nil }
	for _, step := range []struct {
		name   string
		action string
		ids    []string
		flash  string
		check  func() bool
	}{
		{"hold two", "hold", []string{m1, m2}, "hold: 2 of 2 done.", func() bool { return held(m1) && held(m2) && !held(m3) }},
		{"list held", "", nil, "", func() bool { return slices.Equal(list("state=held"), []string{m1, m2}) }},
		{"list by domain", "", nil, "", func() bool { return slices.Equal(list("domain=one.example"), []string{m1, m3}) }},
		{"list by sender", "", nil, "", func() bool { return slices.Equal(list("from=%3C%3E"), []string{m3}) }},
		{"list by recipient", "", nil, "", func() bool { return slices.Equal(list("to=y%40two.example"), []string{m2}) }},
		{"release one", "release", []string{m1}, "release: 1 of 1 done.", func() bool { return !held(m1) && held(m2) }},
		{"flush", "flush", []string{m1}, "flush: 1 of 1 done.", func() bool { return exists(m1) }},
		{"delete", "delete", []string{m3, "0000NOSUCH"}, "there is no message 0000NOSUCH", func() bool { return !exists(m3) }},
		{"bounce", "bounce", []string{m2}, "bounce: 1 of 1 done.", func() bool { return !exists(m2) }},
		{"nothing ticked", "hold", nil, "Tick the messages to hold first.", func() bool { return true }},
		{"unknown action", "explode", []string{m1}, "Unknown action.", func() bool { return exists(m1) }},
	} {
		if step.flash != "" {
			r := b.post("/queue", "/queue", url.Values{"action": {step.action}, "id": step.ids, "back": {"/queue?state=held"}})
			if r.code != http.StatusSeeOther {
				t.Errorf("%s: %d, want 303", step.name, r.code)
			}
			if page := b.do("GET", r.location, nil).body; !strings.Contains(page, step.flash) {
				t.Errorf("%s: the page after lacks %q:\n%s", step.name, step.flash, page)
			}
		}
		if !step.check() {
			t.Errorf("%s: not done", step.name)
		}
	}
	// Every message the filters select, ticked or not.
	m4 := f.add("c@example.test", "w@one.example")
	m5 := f.add("c@example.test", "v@two.example")
	r = b.post("/queue?domain=one.example", "/queue", url.Values{"action": {"hold"}, "all": {"1"}, "domain": {"one.example"}})
	if page := b.do("GET", r.location, nil).body; !strings.Contains(page, "hold: 2 done of the messages selected.") {
		t.Errorf("hold every message selected: %d\n%s", r.code, page)
	}
	if !held(m1) || !held(m4) || held(m5) {
		t.Errorf("hold of every message of one.example: held %v %v %v, want true true false", held(m1), held(m4), held(m5))
	}
	if r := b.do("GET", "/queue?domain=one.example", nil); !strings.Contains(r.body, "2 selected of 4 in the queue.") {
		t.Errorf("queue page with a filter lacks its count (the 4: m1, m4, m5 and the bounce of m2):\n%s", r.body)
	}
	wantLog(t, f.logs.String(), `msg="webadmin: queue hold" admin=alice remote=127.0.0.1 select="{From: To: Domain:one.example Held:false Deferred:false}" done=2`)
	wantLog(t, f.logs.String(), `msg="webadmin: queue hold" admin=alice remote=127.0.0.1 msgid="\[`+m1+` `+m2+`\]" done=2`)
	wantLog(t, f.logs.String(), `msg="webadmin: queue delete" admin=alice`)
	wantLog(t, f.logs.String(), `msg="webadmin: queue delete failed" admin=alice remote=127.0.0.1 msgid=0000NOSUCH err="there is no message 0000NOSUCH`)

	// A thousand failures are summed up on the page; the log has each.
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("%016d", i))
	}
	r = b.post("/queue", "/queue", url.Values{"action": {"hold"}, "id": many})
	if page := b.do("GET", r.location, nil).body; strings.Count(page, `class="flash"`) != maxFlash+1 || !strings.Contains(page, "(more not shown: the log has them all)") {
		t.Errorf("a thousand failures: %d notes on the page", strings.Count(page, `class="flash"`))
	}
}

func TestMessagePage(t *testing.T) {
	f := newFixture(t, false)
	id := f.add("a@example.test", "x@one.example")
	b := f.loggedIn()
	r := b.do("GET", "/queue/message?id="+id, nil)
	for _, want := range []string{"Subject: to x@one.example", "hello &lt;b&gt;there&lt;/b&gt;", "x@one.example", `value="/queue/message?id=` + id + `"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("message page lacks %q:\n%s", want, r.body)
		}
	}
	if r := b.do("GET", "/queue/message?id=0000NOSUCH", nil); r.code != http.StatusNotFound || !strings.Contains(r.body, "there is no message 0000NOSUCH") {
		t.Errorf("unknown message: %d\n%s", r.code, r.body)
	}
	// A hold from the details page comes back to it.
	if r := b.post("/queue/message?id="+id, "/queue", url.Values{"action": {"hold"}, "id": {id}, "back": {"/queue/message?id=" + id}}); r.location != "/queue/message?id="+id {
		t.Errorf("hold from the details page goes to %q", r.location)
	}
	// Only the queue's own pages are places to go back to.
	if r := b.post("/queue", "/queue", url.Values{"action": {"release"}, "id": {id}, "back": {"https://evil.example/"}}); r.location != "/queue" {
		t.Errorf("back to another site: redirected to %q", r.location)
	}
}

// fakeAccounts records what the accounts page asks.
type fakeAccounts struct {
	mu    sync.Mutex
	calls []string
}

func (a *fakeAccounts) note(s string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s)
	if strings.Contains(s, "bad") {
		return errors.New("not a mail address: bad")
	}
	return nil
}

func (a *fakeAccounts) List(context.Context) ([]Account, error) {
	return []Account{{Addr: "bob@example.test", Mechanisms: []string{"PLAIN", "LOGIN"}, Missing: []string{"CRAM-MD5"}},
		{Addr: "eve@example.test", Disabled: true}}, nil
}
func (a *fakeAccounts) Add(_ context.Context, addr, pw string) error {
	return a.note("add " + addr + " " + pw)
}
func (a *fakeAccounts) SetPassword(_ context.Context, addr, pw string) error {
	return a.note("passwd " + addr + " " + pw)
}
func (a *fakeAccounts) Delete(_ context.Context, addr string) error { return a.note("delete " + addr) }
func (a *fakeAccounts) SetDisabled(_ context.Context, addr string, d bool) error {
	if d {
		return a.note("disable " + addr)
	}
	return a.note("enable " + addr)
}
func (a *fakeAccounts) Aliases(context.Context) ([]accounts.Alias, error) {
	return []accounts.Alias{{Addr: "info@example.test", Targets: []string{"bob@example.test"}}}, nil
}
func (a *fakeAccounts) AddAlias(_ context.Context, addr string, targets []string) error {
	return a.note("alias add " + addr + " " + strings.Join(targets, "+"))
}
func (a *fakeAccounts) DeleteAlias(_ context.Context, addr string, targets []string) error {
	return a.note("alias delete " + addr + " " + strings.Join(targets, "+"))
}

func TestAccounts(t *testing.T) {
	f := newFixture(t, false)
	b := f.loggedIn()
	r := b.do("GET", "/accounts", nil)
	for _, want := range []string{"bob@example.test", "PLAIN LOGIN", "no secret for CRAM-MD5", "info@example.test", `aria-label="New password for bob@example.test"`,
		`aria-label="Disable bob@example.test"`, `eve@example.test <strong class="disabled">disabled</strong>`, `aria-label="Enable eve@example.test"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("accounts page lacks %q", want)
		}
	}
	for _, step := range []struct {
		path  string
		form  url.Values
		call  string
		flash string
	}{
		{"/accounts", url.Values{"action": {"add"}, "address": {" carol@example.test "}, "password": {"pw1"}}, "add carol@example.test pw1", "account add carol@example.test: done."},
		{"/accounts", url.Values{"action": {"passwd"}, "address": {"bob@example.test"}, "password": {"pw2"}}, "passwd bob@example.test pw2", "account passwd bob@example.test: done."},
		{"/accounts", url.Values{"action": {"delete"}, "address": {"bob@example.test"}}, "delete bob@example.test", "account delete bob@example.test: done."},
		{"/accounts", url.Values{"action": {"disable"}, "address": {"bob@example.test"}}, "disable bob@example.test", "account disable bob@example.test: done."},
		{"/accounts", url.Values{"action": {"enable"}, "address": {"bob@example.test"}}, "enable bob@example.test", "account enable bob@example.test: done."},
		{"/accounts", url.Values{"action": {"add"}, "address": {"bad"}, "password": {"x"}}, "add bad x", "account add bad: not a mail address: bad"},
		{"/aliases", url.Values{"action": {"add"}, "alias": {"sales@example.test"}, "targets": {"bob@example.test, carol@example.test"}}, "alias add sales@example.test bob@example.test+carol@example.test", "done."},
		{"/aliases", url.Values{"action": {"delete"}, "alias": {"info@example.test"}}, "alias delete info@example.test ", "alias delete info@example.test : done."},
	} {
		r := b.post("/accounts", step.path, step.form)
		if r.code != http.StatusSeeOther {
			t.Errorf("%s: %d", step.call, r.code)
		}
		if page := b.do("GET", "/accounts", nil).body; !strings.Contains(page, step.flash) {
			t.Errorf("%s: page lacks %q", step.call, step.flash)
		}
		if got := f.accts.calls[len(f.accts.calls)-1]; got != step.call {
			t.Errorf("call %q, want %q", got, step.call)
		}
	}
	wantLog(t, f.logs.String(), `msg="webadmin: account add" admin=alice remote=127.0.0.1 target=carol@example.test`)
	wantLog(t, f.logs.String(), `msg="webadmin: account add failed" admin=alice`)
}

// wantLog fails unless the log has a line matching the regular expression re.
func wantLog(t *testing.T, log, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(log) {
		t.Errorf("no log line matches %s in:\n%s", re, log)
	}
}
