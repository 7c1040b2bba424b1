package test

import (
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWebAdminFirefox drives the admin web interface in a real headless Firefox (Debian's
// firefox-esr, over WebDriver BiDi) as wide as a phone: a wrong password shows the login
// error, the right one logs in, every page has every control labelled and nothing wider than
// the window, a message is held and an account added through the forms.
func TestWebAdminFirefox(t *testing.T) {
	t.Parallel()
	b := startFirefox(t)
	tn, base := startWebAdmin(t, "")
	b.setViewport(375, 812)

	// A wrong password, then the right one.
	login := func(pw string) {
		t.Helper()
		b.navigate(base + "/login")
		b.loadAfter(`(() => {
			document.getElementById('name').value = 'alice';
			document.getElementById('password').value = ` + jsString(pw) + `;
			document.getElementById('password').form.requestSubmit();
		})()`)
	}
	login("wrong")
	if got := b.text(".error"); got != "Wrong name or password." {
		t.Errorf("wrong password: %q", got)
	}
	login("pw-admin")
	if got := b.text("#sessions"); got != "0" {
		t.Errorf("sessions now: %q, want 0", got)
	}
	var width int
	if b.eval("window.innerWidth", &width); width != 375 {
		t.Errorf("window width %d, want a phone's, 375", width)
	}

	// A message to a remote domain waits in the queue (there is no DNS): it is held.
	tn.AddUser("dave@example.test", "pw-dave")
	tok := token(t)
	submitPlain(t, tn.Submission, "dave@example.test", "pw-dave", "bob@remote.example", "Subject: firefox "+tok+"\r\n\r\nhello\r\n")
	queue := base + "/queue?to=" + url.QueryEscape("bob@remote.example")
	var id string
	state := func() string {
		t.Helper()
		b.navigate(queue)
		var row *string
		b.eval(`(e => e && e.id)(document.querySelector('[id^="msg-"]'))`, &row)
		if row == nil {
			return ""
		}
		id = strings.TrimPrefix(*row, "msg-")
		return b.text("#" + *row + " .state")
	}
	for deadline := time.Now().Add(30 * time.Second); state() != "deferred"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the message is not deferred in the queue page: %q", state())
		}
	}
	b.loadAfter(`(() => {
		document.getElementById('tick-` + id + `').checked = true;
		document.querySelector('button[value="hold"]').click();
	})()`)
	if got := b.text(".flash"); got != "hold: 1 of 1 done." {
		t.Errorf("hold: %q", got)
	}
	mustMatch(t, "tern queue list", tn.QueueList(), `^`+id+`!`)
	b.navigate(base + "/queue/message?id=" + id)
	if got := b.text("pre.message"); !strings.Contains(got, "Subject: firefox "+tok) {
		t.Errorf("message details lack its subject:\n%s", got)
	}

	// An account added through the form is then in the list.
	b.navigate(base + "/accounts")
	b.loadAfter(`(() => {
		document.getElementById('add-address').value = 'carol@example.test';
		document.getElementById('add-password').value = 'pw-carol';
		document.getElementById('add-password').form.requestSubmit();
	})()`)
	if got := b.text(".flash"); got != "account add carol@example.test: done." {
		t.Errorf("after adding an account: %q", got)
	}
	b.navigate(base + "/accounts")
	b.text(`button[aria-label="Disable carol@example.test"]`)

	// Every page: every control labelled, nothing wider than a phone.
	for _, p := range []string{"/", "/queue", "/queue/message?id=" + id, "/accounts", "/domains",
		"/domains/records?domain=example.test", "/sessions", "/log"} {
		b.navigate(base + p)
		b.text("main")
		var problems []string
		b.eval(pageProblems, &problems)
		for _, pr := range problems {
			t.Errorf("%s: %s", p, pr)
		}
	}

	log := tn.Log()
	mustMatch(t, "log", log, `msg="webadmin: queue hold" admin=alice remote=127\.0\.0\.1 msgid="?\[`+id+`\]"? done=1`)
	mustMatch(t, "log", log, `msg="webadmin: account add" admin=alice remote=127\.0\.0\.1 target=carol@example\.test`)
}

// submitPlain submits msg from from to to over SMTP at addr, logged in as from with
// PLAIN (in the clear: loopback only).
func submitPlain(t *testing.T, addr, from, password, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // Quit below reports what matters
	steps := []func() error{
		func() error { return c.Hello("client.example.com") },
		func() error { return c.Auth(smtp.PlainAuth("", from, password, "127.0.0.1")) },
		func() error { return c.Mail(from) },
		func() error { return c.Rcpt(to) },
		func() error {
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte(msg)); err != nil {
				return err
			}
			return w.Close()
		},
		c.Quit,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("submitting to %s: %v", addr, err)
		}
	}
}
