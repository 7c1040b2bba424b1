package test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/smtp"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashRecovery kills the server with SIGKILL while five clients send as fast as they can,
// restarts it on the same data directory, and checks the promise behind "250 queued as": every
// acknowledged message is delivered (at least once; duplicates are allowed), and the queue
// drains. Three rounds, each on the data directory the previous crash left behind.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	// bob sends as fast as the machine allows: on a fast one, more than the default
	// rate.account_messages (1000 per hour) in a round.
	tn := startTern(t, ternOpts{Config: "[queue]\nmin_backoff = \"1s\"\n[rate]\naccount_messages = 0\naccount_recipients = 0\naccount_day_messages = 0\naccount_day_recipients = 0\n"})
	tn.AddUser("bob@example.test", "pw")

	acked := map[string]string{} // token -> queue id, over all rounds
	for round := 1; round <= 3; round++ {
		got := sendUntilKilled(t, tn, round, 5, 1500*time.Millisecond)
		for tok, id := range got {
			acked[tok] = id
		}
		if len(got) == 0 {
			t.Fatalf("round %d: no message was acknowledged before the kill", round)
		}
		tn.Start()
		tn.WaitQueueEmpty(60 * time.Second)

		delivered := map[string]int{}
		tokRE := regexp.MustCompile(`crash-token-[0-9a-z-]+`)
		msgs := tn.Maildir("bob@example.test")
		for _, m := range msgs {
			if tok := tokRE.FindString(header(m, "Subject")); tok != "" {
				delivered[tok]++
			}
		}
		var lost []string
		dups := 0
		for tok, id := range acked {
			switch n := delivered[tok]; {
			case n == 0:
				lost = append(lost, tok+" (queued as "+id+")")
			case n > 1:
				dups += n - 1
			}
		}
		t.Logf("round %d: %d acknowledged this round, %d in all; %d messages in the Maildir, %d duplicate deliveries",
			round, len(got), len(acked), len(msgs), dups)
		if len(lost) > 0 {
			t.Fatalf("round %d: %d acknowledged message(s) lost after kill -9 and restart: %s",
				round, len(lost), strings.Join(lost, ", "))
		}
	}
	if strings.Contains(tn.Log(), "panic") {
		t.Fatalf("the server log mentions a panic")
	}
	tn.Stop()
}

// sendUntilKilled runs n clients (Go's net/smtp) that send messages in a loop, kills the server
// with SIGKILL after d, and returns the tokens of the messages that got "250 ... queued as".
func sendUntilKilled(t *testing.T, tn *Tern, round, n int, d time.Duration) map[string]string {
	t.Helper()
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	var killed atomic.Bool
	errs := make([]error, n)
	queued := regexp.MustCompile(`^2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
	subHost, _ := splitAddr(t, tn.Submission)
	salt := make([]byte, 4)
	rand.Read(salt)
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Even clients use the MX listener unauthenticated; odd ones submission, which
			// requires AUTH: they log in as bob (net/smtp sends PLAIN to 127.0.0.1 without TLS)
			// and send as bob.
			addr, from := tn.SMTP, "alice@host.example.com"
			if c%2 == 1 {
				addr, from = tn.Submission, "bob@example.test"
			}
			cl, err := smtp.Dial(addr)
			if err != nil {
				errs[c] = err
				return
			}
			defer cl.Close()
			if err := cl.Hello("client.example.com"); err != nil {
				errs[c] = err
				return
			}
			if addr == tn.Submission {
				// AUTH (argon2id on the server) may still be running on a loaded machine when
				// the kill comes: then its error is expected.
				if err := cl.Auth(smtp.PlainAuth("", "bob@example.test", "pw", subHost)); err != nil {
					if !killed.Load() {
						errs[c] = fmt.Errorf("AUTH: %w", err)
					}
					return
				}
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("crash-token-r%d-c%d-m%d-%s", round, c, i, hex.EncodeToString(salt))
				id, err := sendOne(cl, from, tok)
				if err != nil {
					if !killed.Load() {
						errs[c] = fmt.Errorf("before the kill: %w", err)
					}
					return // after the kill: expected
				}
				if m := queued.FindStringSubmatch(id); m != nil {
					mu.Lock()
					acked[tok] = m[1]
					mu.Unlock()
				} else {
					errs[c] = fmt.Errorf("unexpected reply to the end of data: 250 %s", id)
					return
				}
			}
		}()
	}
	time.Sleep(d)
	killed.Store(true)
	tn.Kill()
	close(stop)
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Fatalf("round %d client %d: %v", round, c, err)
		}
	}
	return acked
}

// sendOne runs one transaction with net/smtp and returns the text of the 250 reply to the end
// of the data (net/smtp's own Data hides it, so DATA goes through its textproto connection).
func sendOne(cl *smtp.Client, from, tok string) (string, error) {
	if err := cl.Mail(from); err != nil {
		return "", err
	}
	if err := cl.Rcpt("bob@example.test"); err != nil {
		return "", err
	}
	id, err := cl.Text.Cmd("DATA")
	if err != nil {
		return "", err
	}
	cl.Text.StartResponse(id)
	defer cl.Text.EndResponse(id)
	if _, _, err := cl.Text.ReadResponse(354); err != nil {
		return "", err
	}
	w := cl.Text.DotWriter()
	if _, err := fmt.Fprintf(w, "From: %s\nTo: bob@example.test\nSubject: %s\n\n%s\n", from, tok, strings.Repeat("crash test body line\n", 20)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	_, msg, err := cl.Text.ReadResponse(250)
	return msg, err
}
