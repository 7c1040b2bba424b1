package test

import (
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// acked is a message the server acknowledged: its queue id and the token in its subject.
type acked struct{ id, token string }

// sendLoop sends messages over one connection until stop is closed, and reports each one the
// server acknowledged (250) on out. With user set it logs in (submission) first.
func sendLoop(addr, user, password, from, to, prefix string, stop <-chan struct{}, out chan<- acked) error {
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // the replies are read, or failed
	step := func(code int, format string, args ...any) (string, error) {
		if format != "" {
			if err := c.PrintfLine(format, args...); err != nil {
				return "", err
			}
		}
		_, msg, err := c.ReadResponse(code)
		return msg, err
	}
	if _, err := step(220, ""); err != nil {
		return err
	}
	if _, err := step(250, "EHLO load.example.com"); err != nil {
		return err
	}
	if user != "" {
		if _, err := step(235, "AUTH PLAIN %s", plainIR(user, password)); err != nil {
			return err
		}
	}
	queued := regexp.MustCompile(`queued as ([0-9A-F]+)`)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		tok := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := step(250, "MAIL FROM:<%s>", from); err != nil {
			return err
		}
		if _, err := step(250, "RCPT TO:<%s>", to); err != nil {
			return err
		}
		if _, err := step(354, "DATA"); err != nil {
			return err
		}
		msg, err := step(250, "Subject: %s\r\n\r\nbody of %s\r\n.", tok, tok)
		if err != nil {
			return err
		}
		m := queued.FindStringSubmatch(msg)
		if m == nil {
			return fmt.Errorf("no queue id in %q", msg)
		}
		select {
		case out <- acked{m[1], tok}:
		case <-stop:
			return nil
		}
	}
}

// TestBackupUnderLoad backs up a running server while clients send continuously, half to a
// local mailbox through the MX listener (delivered to the Maildir at once) and half to a remote
// domain through submission (deferred: the tests' resolver answers nothing), restores the
// backup into a new data directory and starts a server on it: every message acknowledged
// before `tern backup` started is there, queued or in the Maildir, and bob logs in with his
// password. A restore into a data directory that is not empty is refused.
func TestBackupUnderLoad(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw-bob")

	stop := make(chan struct{})
	acks := make(chan acked)
	errs := make(chan error, 4)
	var senders sync.WaitGroup
	for i := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			var err error
			if i%2 == 0 {
				err = sendLoop(tn.SMTP, "", "", "someone@elsewhere.example", "bob@example.test", fmt.Sprintf("local%d", i), stop, acks)
			} else {
				err = sendLoop(tn.Submission, "bob", "pw-bob", "bob@example.test", "far@remote.example", fmt.Sprintf("remote%d", i), stop, acks)
			}
			errs <- err
		}()
	}
	var before []acked // acknowledged before the backup started
	collect := func(n int) {
		t.Helper()
		for range n {
			select {
			case a := <-acks:
				before = append(before, a)
			case err := <-errs:
				t.Fatalf("a sender stopped: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("no message acknowledged within 30s")
			}
		}
	}
	collect(200)
	backup := filepath.Join(t.TempDir(), "backup")
	done := make(chan struct{})
	var out, errOut string
	var code int
	go func() {
		defer close(done)
		out, errOut, code = tn.ternCmd("", []string{"backup"}, "--mail", backup)
	}()
	// The load goes on while the backup runs; what is acknowledged now may or may not be in it.
	during := 0
	for running := true; running; {
		select {
		case <-acks:
			during++
		case <-done:
			running = false
		}
	}
	close(stop)
	go func() {
		for range acks { // let the senders finish their last message
		}
	}()
	senders.Wait()
	close(acks)
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("sender: %v", err)
		}
	}
	if code != 0 {
		t.Fatalf("tern backup: exit %d\n%s%s", code, out, errOut)
	}
	mustMatch(t, "tern backup", out, `queue from the running server, Maildirs included`)
	t.Logf("%d messages acknowledged before the backup, %d while it ran", len(before), during)
	tn.Stop()

	// Never over a server's state.
	if _, errOut, code := tn.ternCmd("", []string{"restore"}, backup); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore over the old data directory: exit %d, %s", code, errOut)
	}

	tn2 := startTern(t, ternOpts{NoStart: true})
	if out, errOut, code := tn2.ternCmd("", []string{"restore"}, backup); code != 0 {
		t.Fatalf("tern restore: exit %d\n%s%s", code, out, errOut)
	}
	tn2.Start()
	// The queue first, then the Maildir: a message delivered in between is in the Maildir.
	queued := tn2.QueueList()
	var mail strings.Builder
	for _, m := range tn2.Maildir("bob@example.test") {
		mail.WriteString(m)
	}
	missing, inQueue, inMail := 0, 0, 0
	for _, a := range before {
		switch {
		case strings.Contains(queued, a.id):
			inQueue++
		case strings.Contains(mail.String(), "Subject: "+a.token+"\n"):
			inMail++
		default:
			missing++
			if missing <= 10 {
				t.Errorf("message %s (%s), acknowledged before the backup, is neither queued nor delivered", a.id, a.token)
			}
		}
	}
	t.Logf("restored: %d queued, %d in the Maildir", inQueue, inMail)
	if inQueue == 0 || inMail == 0 {
		t.Errorf("the test wants messages both queued (%d) and delivered (%d)", inQueue, inMail)
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged messages missing from the restored server", missing, len(before))
	}

	d := dialFrom(t, "127.0.0.1", tn2.Submission)
	d.expect(`220 .*`)
	d.ehlo("client.example.com")
	d.cmd("AUTH PLAIN "+plainIR("bob", "pw-bob"), authOKRE)
	d.cmd("QUIT", `221 .*`)
	if _, err := os.Stat(filepath.Join(tn.Data, "queue")); err != nil {
		t.Error(err)
	}
	if ents, _ := filepath.Glob(filepath.Join(tn.Data, "backup-snapshot-*")); len(ents) > 0 {
		t.Errorf("the snapshot was left in the data directory: %v", ents)
	}
}

// TestBackupStopped backs up a stopped server (the queue copied under the data directory's
// lock) and restores it: the deferred message is queued again. A directory that is not a
// complete backup is refused.
func TestBackupStopped(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw-bob")
	d := dialFrom(t, "127.0.0.1", tn.Submission)
	d.expect(`220 .*`)
	d.ehlo("client.example.com")
	d.cmd("AUTH PLAIN "+plainIR("bob", "pw-bob"), authOKRE)
	id := queueID(t, d.sendMessage("bob@example.test", "far@remote.example", "Subject: stopped\r\n\r\nwaits\r\n"))
	d.cmd("QUIT", `221 .*`)
	tn.Stop()

	backup := filepath.Join(t.TempDir(), "backup")
	out, errOut, code := tn.ternCmd("", []string{"backup"}, backup)
	if code != 0 {
		t.Fatalf("tern backup: exit %d\n%s%s", code, out, errOut)
	}
	mustMatch(t, "tern backup", out, `queue with the server stopped, Maildirs not included`)

	tn2 := startTern(t, ternOpts{NoStart: true})
	if _, errOut, code := tn2.ternCmd("", []string{"restore"}, t.TempDir()); code == 0 || !strings.Contains(errOut, "not a complete tern backup") {
		t.Errorf("restore of an empty directory: exit %d, %s", code, errOut)
	}
	if out, errOut, code := tn2.ternCmd("", []string{"restore"}, backup); code != 0 {
		t.Fatalf("tern restore: exit %d\n%s%s", code, out, errOut)
	}
	tn2.Start()
	mustMatch(t, "tern queue list", tn2.QueueList(), id)
}
