package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startBrowser starts a headless Chromium driven over the DevTools protocol (chromedp):
// Debian's chromium, with a user data directory of its own, pages as wide as a phone's, and no
// network beyond loopback (every name resolves to nothing, every address but loopback goes to a
// proxy where nothing listens). It is stopped, and its process checked gone by PID, when the
// test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := needTool(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.ProxyServer("127.0.0.1:9"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The first action starts the browser; the page is as wide as a phone's (375 CSS pixels).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile)); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	proc := chromedp.FromContext(ctx).Browser.Process()
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // kills the browser and waits for it
		if proc != nil {
			if err := proc.Signal(syscall.Signal(0)); err == nil {
				t.Errorf("chromium (pid %d) still runs after the test", proc.Pid)
			}
		}
	})
	return ctx
}

// run runs browser steps with a deadline, failing the test on error.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// text returns the text of the first element sel selects, once it is visible.
func text(t *testing.T, ctx context.Context, sel chromedp.CSS) string {
	t.Helper()
	run(t, ctx, "wait for "+string(sel), chromedp.WaitVisible(sel))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

// submitForm opens url, types each value into the field of that id (id, value, id, value...)
// and submits the form of the last.
func submitForm(t *testing.T, ctx context.Context, url string, idValues ...string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}
	for i := 0; i+1 < len(idValues); i += 2 {
		steps = append(steps, chromedp.SendKeys(chromedp.ID(idValues[i]), idValues[i+1]))
	}
	steps = append(steps, chromedp.Submit(chromedp.ID(idValues[len(idValues)-2])))
	run(t, ctx, "submit the form at "+url, steps...)
}

// pageProblems is a script that lists what is wrong with the page shown for an admin on a
// phone: controls without an accessible name (a label, aria-label, or a button's text), and a
// page wider than the window (a table may scroll inside its own box).
const pageProblems = `(() => {
	const out = [];
	for (const el of document.querySelectorAll('input, select, textarea, button')) {
		if (el.type === 'hidden') continue;
		const named = el.getAttribute('aria-label') || (el.id && document.querySelector('label[for="' + el.id + '"]')) ||
			(el.tagName === 'BUTTON' && el.textContent.trim());
		if (!named) out.push('no accessible name: ' + el.outerHTML);
	}
	if (document.documentElement.scrollWidth > window.innerWidth) {
		out.push('wider than the window: ' + document.documentElement.scrollWidth + 'px > ' + window.innerWidth + 'px');
	}
	return out;
})()`

// checkPages opens each page and fails the test on what pageProblems finds.
func checkPages(t *testing.T, ctx context.Context, base string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		run(t, ctx, "open "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main")))
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](pageProblems))
		cancel()
		if err != nil {
			t.Fatalf("checking %s: %v", p, err)
		}
		for _, pr := range problems {
			t.Errorf("%s: %s", p, pr)
		}
	}
}

// TestWebAdmin drives the admin web interface in a real Chromium: logs in, adds an account
// that swaks then logs in with over SMTP, sees its message in the queue, holds and releases
// it, is refused a form without its CSRF token, and is throttled after wrong logins.
func TestWebAdmin(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	ctx := startBrowser(t)
	tn := startTern(t, ternOpts{Config: "[auth]\nmax_failures = 3\n", ServeArgs: []string{"--admin", "127.0.0.1:0"}})
	m := regexp.MustCompile(`tern: admin web interface on (http://\S+)/`).FindStringSubmatch(tn.Log())
	if m == nil {
		t.Fatalf("no admin web interface address in the log")
	}
	base := m[1]
	if out, errOut, code := tn.ternCmd("pw-admin\n", []string{"admin", "add"}, "--password-stdin", "alice"); code != 0 || !strings.HasPrefix(out, "added admin alice") {
		t.Fatalf("tern admin add: %d\n%s%s", code, out, errOut)
	}

	// Log in.
	submitForm(t, ctx, base+"/", "name", "alice", "password", "pw-admin")
	if got := text(t, ctx, "#sessions"); got != "0" {
		t.Errorf("sessions now: %q, want 0", got)
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.innerWidth")); err != nil || w != 375 {
		t.Errorf("window width %d, %v; want a phone's, 375", w, err)
	}

	// Add an account, and log in with it over SMTP.
	submitForm(t, ctx, base+"/accounts", "add-address", "dave@example.test", "add-password", "pw-dave")
	if got := text(t, ctx, ".flash"); got != "account add dave@example.test: done." {
		t.Errorf("after adding an account: %q", got)
	}
	host, port := splitAddr(t, tn.Submission)
	tok := token(t)
	// To a remote domain: with no DNS the message waits in the queue.
	out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", host, "--port", port,
		"--helo", "client.example.com", "--from", "dave@example.test", "--to", "bob@remote.example",
		"--header", "Subject: web "+tok, "--auth", "PLAIN", "--auth-user", "dave@example.test", "--auth-password", "pw-dave")
	if code != 0 {
		t.Fatalf("swaks as dave: exit status %d", code)
	}
	mustMatch(t, "swaks transcript", out+errOut, `^<[-~]  `+authOKRE+`$`)
	id := mustMatch(t, "swaks transcript", out+errOut, `^<[-~]  250 2\.0\.0 Ok: queued as (\S+)`)[1]

	// Disabled, the account cannot log in; enabled, it can again.
	run(t, ctx, "disable dave", chromedp.Navigate(base+"/accounts"), chromedp.Click(chromedp.CSS(`button[aria-label="Disable dave@example.test"]`)))
	if got := text(t, ctx, ".flash"); got != "account disable dave@example.test: done." {
		t.Errorf("after disabling: %q", got)
	}
	// swaksAuth logs in as dave, and quits.
	swaksAuth := func() (transcript string, code int) {
		out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", host, "--port", port, "--quit-after", "AUTH",
			"--auth", "PLAIN", "--auth-user", "dave@example.test", "--auth-password", "pw-dave")
		return out + errOut, code
	}
	transcript, _ := swaksAuth()
	mustMatch(t, "swaks transcript (disabled)", transcript, `^<\*\* +535 5\.7\.8 `)
	run(t, ctx, "enable dave", chromedp.Navigate(base+"/accounts"), chromedp.Click(chromedp.CSS(`button[aria-label="Enable dave@example.test"]`)))
	text(t, ctx, ".flash")
	if transcript, code := swaksAuth(); code != 0 {
		t.Errorf("swaks as dave, enabled again: exit status %d", code)
	} else {
		mustMatch(t, "swaks transcript (enabled)", transcript, `^<[-~]  `+authOKRE+`$`)
	}

	// The overview counts it; a session held open is among the live ones; the log page has
	// its line.
	run(t, ctx, "overview", chromedp.Navigate(base+"/"))
	if got := text(t, ctx, ".graphs figure:first-child .total"); got != "1" {
		t.Errorf("accepted in the last hour: %q, want 1", got)
	}
	if got := text(t, ctx, ".auth-count"); got != "1" {
		t.Errorf("AUTH failures in the last hour: %q, want 1 (the disabled account's)", got)
	}
	c, err := net.Dial("tcp", tn.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the test is over: nothing to report
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	run(t, ctx, "live sessions", chromedp.Navigate(base+"/sessions"))
	if got := text(t, ctx, "tbody tr td:nth-child(2)"); got != "smtp" {
		t.Errorf("live session's listener: %q, want smtp", got)
	}
	run(t, ctx, "log", chromedp.Navigate(base+"/log"))
	if got := text(t, ctx, "pre.log"); !strings.Contains(got, "msg=queued") || !strings.Contains(got, "msgid="+id) {
		t.Errorf("recent log lacks the queued line:\n%s", got)
	}

	// See it in the queue, once its first attempt failed.
	state := func() string {
		t.Helper()
		run(t, ctx, "open the queue", chromedp.Navigate(base+"/queue?to=bob%40remote.example"))
		return text(t, ctx, chromedp.CSS("#msg-"+id+" .state"))
	}
	for deadline := time.Now().Add(30 * time.Second); state() != "deferred"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not deferred in the queue page: %q", id, state())
		}
	}
	run(t, ctx, "show the message", chromedp.Click(chromedp.CSS(`a[href="/queue/message?id=`+id+`"]`)))
	if got := text(t, ctx, "pre.message"); !strings.Contains(got, "Subject: web "+tok) {
		t.Errorf("message details lack its subject:\n%s", got)
	}

	// Hold and release it.
	act := func(action, want string) {
		t.Helper()
		run(t, ctx, action,
			chromedp.Navigate(base+"/queue"),
			chromedp.Click(chromedp.ID("tick-"+id)),
			chromedp.Click(chromedp.CSS(`button[value="`+action+`"]`)),
		)
		if got := text(t, ctx, ".flash"); got != action+": 1 of 1 done." {
			t.Errorf("%s: %q", action, got)
		}
		if got := state(); got != want {
			t.Errorf("after %s: state %q, want %q", action, got, want)
		}
	}
	act("hold", "held")
	mustMatch(t, "tern queue list", tn.QueueList(), `^`+id+`!`)
	act("release", "deferred")

	// A form without its CSRF token is refused, and changes nothing.
	run(t, ctx, "hold without a CSRF token",
		chromedp.Navigate(base+"/queue"),
		chromedp.Click(chromedp.ID("tick-"+id)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`document.querySelector('#queue-form input[name=csrf]').remove()`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.CSS(`button[value="hold"]`)),
	)
	text(t, ctx, ".error")
	if got := text(t, ctx, "h1"); got != "Forbidden" {
		t.Errorf("form without CSRF token: page %q, want Forbidden", got)
	}
	if got := state(); got != "deferred" {
		t.Errorf("after a refused hold: state %q", got)
	}

	// Every page: every control labelled, nothing wider than a phone.
	checkPages(t, ctx, base, "/", "/queue", "/queue/message?id="+id, "/accounts", "/domains",
		"/domains/records?domain=example.test", "/sessions", "/log")

	// The domains page: the records to publish, and what DNS says of them (no DNS here).
	run(t, ctx, "domains", chromedp.Navigate(base+"/domains"),
		chromedp.Click(chromedp.CSS(`a[href="/domains/records?domain=example.test"]`)))
	if got := text(t, ctx, "pre.log"); !strings.Contains(got, "MX") || !strings.Contains(got, "mx.example.test.") {
		t.Errorf("records of example.test:\n%s", got)
	}
	run(t, ctx, "check the records", chromedp.Click(chromedp.CSS(`a[href="/domains/records?domain=example.test&check=1"]`)))
	if got := text(t, ctx, "#check-result"); got != "Some records are missing or differ." {
		t.Errorf("check without DNS: %q", got)
	}

	// Wrong logins are throttled: after auth.max_failures, even the right password is refused.
	checkPages(t, ctx, base, "/login")
	run(t, ctx, "log out",
		chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("name")),
	)
	login := func(pw string) string {
		t.Helper()
		submitForm(t, ctx, base+"/login", "name", "alice", "password", pw)
		return text(t, ctx, ".error")
	}
	for i, want := range []string{"Wrong name or password.", "Wrong name or password.", "Too many failed logins from your address: try again later."} {
		if got := login("wrong"); got != want {
			t.Errorf("wrong login %d: %q, want %q", i+1, got, want)
		}
	}
	if got := login("pw-admin"); !strings.HasPrefix(got, "Too many failed logins") {
		t.Errorf("right password while blocked: %q", got)
	}
	log := tn.Log()
	mustMatch(t, "log", log, `msg="webadmin: account add" admin=alice remote=127\.0\.0\.1 target=dave@example\.test`)
	mustMatch(t, "log", log, `msg="webadmin: queue hold" admin=alice remote=127\.0\.0\.1 msgid="?\[`+id+`\]"? done=1`)
	mustMatch(t, "log", log, `msg="webadmin: refused" .*reason="the form's CSRF token is missing or wrong"`)
	mustMatch(t, "log", log, `msg="webadmin: login refused: too many failures" remote=127\.0\.0\.1 admin=alice`)
}

// TestWebAdminPublicRefused: an address that is not loopback is refused without TLS.
func TestWebAdminPublicRefused(t *testing.T) {
	_, errOut, code := runTool(t, 30*time.Second, "", ternBin, "serve", "--data", t.TempDir(), "--domain", testDomain,
		"--smtp", "127.0.0.1:0", "--submission", "", "--submissions", "", "--admin", "0.0.0.0:0")
	if code == 0 {
		t.Fatal("tern serve --admin 0.0.0.0:0 started")
	}
	mustMatch(t, "stderr", errOut, `admin\.listen \(--admin\) "0\.0\.0\.0:0": not a loopback address.*admin\.tls = true`)
}

// TestWebAdminTLS: with admin.tls the pages are served over HTTPS with the server's
// certificate, and the cookies are Secure, with the __Host- prefix.
func TestWebAdminTLS(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[admin]\ntls = true\n", ServeArgs: []string{"--admin", "127.0.0.1:0"}})
	m := regexp.MustCompile(`tern: admin web interface on (https://\S+)/`).FindStringSubmatch(tn.Log())
	if m == nil {
		t.Fatalf("no https admin address in the log")
	}
	// The self-signed certificate tern made: trusted for this request only.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, err := c.Get(m[1] + "/login")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close() // the headers are what is checked
	if res.StatusCode != http.StatusOK || res.TLS == nil {
		t.Fatalf("GET /login over TLS: %d, TLS %v", res.StatusCode, res.TLS != nil)
	}
	ck := res.Cookies()
	if len(ck) != 1 || ck[0].Name != "__Host-tern_login" || !ck[0].Secure || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookies over TLS: %+v, want one __Host- cookie, Secure, HttpOnly, SameSite=Strict", ck)
	}
	// Plain HTTP on the same port gets no page.
	if res, err := http.Get(strings.Replace(m[1], "https:", "http:", 1) + "/login"); err == nil {
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("plain HTTP served the login page")
		}
	}
}
