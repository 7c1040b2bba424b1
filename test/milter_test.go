package test

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/tern-mail/tern/internal/testutil"
)

// sendSMTP sends one message over plain SMTP (no STARTTLS) and returns the error of the first
// command refused, with its reply.
func sendSMTP(t *testing.T, addr, from, to, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		return err // a refusal in place of the greeting
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// waitListening waits until something accepts connections on addr (a peer we started), or
// fails the test when done closes first (it exited).
func waitListening(t *testing.T, addr string, done <-chan struct{}, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited before listening on %s", what, addr)
		case <-time.After(50 * time.Millisecond): // polling a port that is not open yet
		}
	}
	t.Fatalf("%s did not listen on %s within 30s", what, addr)
}

// startProcess starts a peer and stops it by PID when the test ends; done closes when it
// exits.
func startProcess(t *testing.T, log *testutil.SyncBuffer, name string, args ...string) <-chan struct{} {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// A group of its own: a peer that forks workers (rspamd) is stopped with them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its end is what done reports
		close(done)
	}()
	t.Cleanup(func() {
		pid := cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM) // by PID (its group); it may have exited already
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL) // workers that outlived their parent
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	return done
}

// needDkimpy returns the system's python3 with dkimpy and the verifier script that takes the
// key records from a file (internal/dkim/testdata/dkimpy_verify.py).
func needDkimpy(t *testing.T) (py, verifyPy string) {
	t.Helper()
	py = "/usr/bin/python3"
	if exec.Command(py, "-c", "import dkim").Run() != nil {
		testutil.MissingPeer(t, "dkimpy (python3-dkim) not installed: run scripts/test-deps.sh")
	}
	verifyPy, err := filepath.Abs("../internal/dkim/testdata/dkimpy_verify.py")
	if err != nil {
		t.Fatal(err)
	}
	return py, verifyPy
}

// TestMilterOpenDKIM: Debian's opendkim, as a signing milter on loopback with a key from
// opendkim-genkey, signs a message tern accepts; the message lands in bob's mailbox with the
// signature, which dkimpy verifies, and fails once its body is changed.
func TestMilterOpenDKIM(t *testing.T) {
	t.Parallel()
	opendkim := needTool(t, "opendkim")
	genkey := needTool(t, "opendkim-genkey")
	py, verifyPy := needDkimpy(t)
	dir := t.TempDir()
	if _, errOut, code := runTool(t, time.Minute, "", genkey, "-D", dir, "-d", "example.test", "-s", "sel"); code != 0 {
		t.Fatalf("opendkim-genkey: %s", errOut)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "sel.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var record strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(string(txt), -1) {
		record.WriteString(m[1])
	}
	keys := writeFile(t, "keys", "sel._domainkey.example.test "+record.String()+"\n")
	addr := freeLoopbackPort(t)
	host, port := splitAddr(t, addr)
	conf := writeFile(t, "opendkim.conf", fmt.Sprintf(`Syslog no
Socket inet:%s@%s
Domain example.test
Selector sel
KeyFile %s
Mode s
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
PidFile %s
RequireSafeKeys false
Background no
`, port, host, filepath.Join(dir, "sel.private"), filepath.Join(dir, "opendkim.pid")))
	done := startProcess(t, &testutil.SyncBuffer{}, opendkim, "-f", "-x", conf)
	waitListening(t, addr, done, "opendkim")

	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[[milter]]\nname = \"opendkim\"\naddress = \"inet:%s\"\nlisteners = [\"smtp\"]\n", addr)})
	tn.AddUser("bob@example.test", "pw-bob-1")
	tok := token(t)
	msg := "From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: " + tok + "\nDate: Sat, 05 Dec 2026 07:00:00 +0000\nMessage-ID: <" + tok + "@example.test>\n\nsigned by opendkim\n"
	if err := sendSMTP(t, tn.SMTP, "alice@example.test", "bob@example.test", msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := tn.WaitMessage("bob@example.test", tok, 30*time.Second)
	sigs := headers(got, "DKIM-Signature")
	if len(sigs) != 1 || !strings.Contains(strings.Join(strings.Fields(sigs[0]), ""), "d=example.test;") {
		t.Fatalf("DKIM-Signature fields %q in\n%s", sigs, got)
	}
	crlf := strings.ReplaceAll(got, "\n", "\r\n") // the Maildir keeps LF line ends
	for _, c := range []struct {
		name, msg, want string
	}{
		{"as delivered", crlf, "pass\n"},
		{"body changed", strings.Replace(crlf, "signed by opendkim", "signed by someone", 1), "fail\n"},
	} {
		out, errOut, _ := runTool(t, time.Minute, c.msg, py, verifyPy, keys)
		if out != c.want {
			t.Errorf("%s: dkimpy says %q (%s), want %q", c.name, out, errOut, c.want)
		}
	}
}

// goMilter serves a milter written with go-milter's server side on loopback until the test
// ends.
func goMilter(t *testing.T, m func() gomilter.Milter) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gomilter.NewServer(gomilter.WithMilter(m), gomilter.WithActions(gomilter.AllClientSupportedActionMasks))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln) // ends with Close
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// slowMilter answers the end of every message only once the test is over: always too late.
type slowMilter struct {
	gomilter.NoOpMilter
	release <-chan struct{}
}

func (m *slowMilter) EndOfMessage(gomilter.Modifier) (*gomilter.Response, error) {
	<-m.release
	return gomilter.RespAccept, nil
}

// crashingMilter drops the connection at the first recipient, as a milter that crashes.
type crashingMilter struct{ gomilter.NoOpMilter }

func (crashingMilter) RcptTo(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return nil, errors.New("crashing on purpose")
}

// TestMilterSlowAndCrashing: a milter that does not answer within eom_timeout and one that
// crashes get their default action: 451 4.7.1 with default_action "tempfail" (nothing
// delivered), the message delivered with "accept"; a milter that is down likewise.
func TestMilterSlowAndCrashing(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := goMilter(t, func() gomilter.Milter { return &slowMilter{release: release} })
	crash := goMilter(t, func() gomilter.Milter { return crashingMilter{} })
	down := freeLoopbackPort(t) // nothing listens there
	for _, tc := range []struct {
		name, addr, action string
		want               string // the refusal, "" for delivered
	}{
		{"slow-tempfail", slow, "tempfail", `^451 "?4\.7\.1 Error: content filter unavailable`},
		{"slow-accept", slow, "accept", ""},
		{"crash-tempfail", crash, "tempfail", `^451 "?4\.7\.1 Error: content filter unavailable`},
		{"crash-accept", crash, "accept", ""},
		{"down-tempfail", down, "tempfail", `^421 "?4\.7\.1`},
		{"down-accept", down, "accept", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tn := startTern(t, ternOpts{Config: fmt.Sprintf("[[milter]]\naddress = \"inet:%s\"\neom_timeout = \"500ms\"\ndefault_action = %q\n", tc.addr, tc.action)})
			tn.AddUser("bob@example.test", "pw-bob-1")
			tok := token(t)
			err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test", "Subject: "+tok+"\n\nhello\n")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				tn.WaitMessage("bob@example.test", tok, 30*time.Second)
				return
			}
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("send: %v, want %s", err, tc.want)
			}
			tn.ExpectNoMail("bob@example.test", 0)
			mustMatch(t, "log", tn.Log(), `milter failed`)
		})
	}
}

// actionMilter acts on the subject at the end of the message: "hold" quarantines it, "edit"
// edits it (a field added, one deleted, the body replaced, a recipient added, the sender
// changed), "discard" discards it.
type actionMilter struct {
	gomilter.NoOpMilter
	subject string
}

func (m *actionMilter) Header(name, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	if strings.EqualFold(name, "Subject") {
		m.subject = value
	}
	return gomilter.RespContinue, nil
}

func (m *actionMilter) EndOfMessage(mod gomilter.Modifier) (*gomilter.Response, error) {
	switch {
	case strings.HasPrefix(m.subject, "hold"):
		return gomilter.RespContinue, mod.Quarantine("held by the test milter")
	case strings.HasPrefix(m.subject, "discard"):
		return gomilter.RespDiscard, nil
	case strings.HasPrefix(m.subject, "edit"):
		for _, err := range []error{
			mod.AddHeader("X-Milter", "edited"),
			mod.ChangeHeader(1, "X-Drop", ""),
			mod.ReplaceBody(strings.NewReader("replaced body\r\n")),
			mod.AddRecipient("<carol@example.test>", ""),
			mod.ChangeFrom("<bounces@example.org>", ""),
		} {
			if err != nil {
				return nil, err
			}
		}
	}
	return gomilter.RespContinue, nil
}

// TestMilterActions: a milter's quarantine holds the message in the queue (released by tern
// queue release), its edits reach the mailboxes, its discard answers 250 and delivers nothing.
func TestMilterActions(t *testing.T) {
	t.Parallel()
	addr := goMilter(t, func() gomilter.Milter { return &actionMilter{} })
	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[[milter]]\naddress = \"inet:%s\"\n", addr)})
	tn.AddUsers("pw-1234", "bob@example.test", "carol@example.test")

	hold := token(t)
	if err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test", "Subject: hold "+hold+"\n\nhello\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	mustMatch(t, "held messages", queueOK(t, tn, "show", "--held", "ALL"), `(?m)^Status:\s+held`)
	queueOK(t, tn, "release", "ALL")
	tn.WaitMessage("bob@example.test", hold, 30*time.Second)

	edit := token(t)
	if err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test", "Subject: edit "+edit+"\nX-Drop: me\n\nhello\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	for _, who := range []string{"bob@example.test", "carol@example.test"} {
		got := tn.WaitMessage(who, edit, 30*time.Second)
		mustMatch(t, who+"'s message", got, `(?m)^X-Milter: edited$`)
		mustMatch(t, who+"'s message", got, `(?m)^Return-Path: <bounces@example\.org>$`)
		mustMatch(t, who+"'s message", got, `\n\nreplaced body\n$`)
		mustNotMatch(t, who+"'s message", got, `X-Drop`)
	}

	discard := token(t)
	if err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test", "Subject: discard "+discard+"\n\nhello\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	tn.ExpectNoMail("carol@example.test", 1)
	if msgs := tn.Maildir("bob@example.test"); len(msgs) != 2 {
		t.Errorf("bob has %d messages, want 2 (the discarded one is not there)", len(msgs))
	}
	mustMatch(t, "log", tn.Log(), `message discarded by filter`)
}
