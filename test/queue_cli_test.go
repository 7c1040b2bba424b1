package test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// tern queue, the built binary, while the server runs (it asks the server through the admin
// socket, and the server logs each request) and while it is stopped (it opens the spool
// itself): list, show, hold, release, flush ID / @domain / all, delete and bounce, and the
// errors for ids that are not queued. The messages wait for B, which is down at first, or for
// d.test, where nothing ever answers; the retry schedule is an hour, so nothing moves unless a
// command moves it.

// queueCmd runs `tern queue ARGS...` on tn's data directory, with the server's --hostname
// (for the reports of a bounce with the server stopped).
func queueCmd(t *testing.T, tn *Tern, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return tn.ternCmd("", []string{"queue", args[0]}, append([]string{"--hostname", testHostname}, args[1:]...)...)
}

// queueOK runs `tern queue ARGS...` and fails unless it exits 0; it returns the output.
func queueOK(t *testing.T, tn *Tern, args ...string) string {
	t.Helper()
	out, errOut, code := queueCmd(t, tn, args...)
	if code != 0 {
		t.Fatalf("tern queue %s: exit status %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// adminLogged waits for the server's log line of an admin request.
func adminLogged(t *testing.T, tn *Tern, op, arg string) {
	t.Helper()
	a := "arg=" + arg
	if arg == "" {
		a = `arg=""`
	}
	waitLog(t, tn, 5*time.Second, 1, "admin request", "op="+op, a, `err=""`)
}

// waitShow waits until `tern queue show id` has a line matching re.
func waitShow(t *testing.T, tn *Tern, id, re string) string {
	t.Helper()
	var out string
	rx := regexp.MustCompile("(?m)" + re)
	waitFor(t, 10*time.Second, "tern queue show "+id+" to match "+re, func() bool {
		out = queueOK(t, tn, "show", id)
		return rx.MatchString(out)
	})
	return out
}

func TestQueueCommands(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "1h"})
	A := w.A

	// Seven messages from alice, each with its own fate.
	send := func(rcpt string) (id, tok string) {
		tok = token(t)
		return w.submit(t, outMsg{Rcpts: []string{rcpt}, Tok: tok}), tok
	}
	idFlush, tokFlush := send(bobB)           // flush ID
	idHold, tokHold := send(bobB)             // held while running, released after a restart
	idHoldOff, tokHoldOff := send(bobB)       // held while stopped, bounced while running
	idBounceOff, tokBounceOff := send(bobB)   // bounced while stopped
	idDomain, tokDomain := send(carolB)       // flush @b.test
	idDead, tokDead := send("someone@d.test") // flush (all), then deleted while running
	idDeleteOff, tokDeleteOff := send(carolB) // deleted while stopped
	all := []string{idFlush, idHold, idHoldOff, idBounceOff, idDomain, idDead, idDeleteOff}
	for _, id := range all {
		waitLog(t, A, 10*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=1")
	}

	// ---- while the server runs
	list := queueOK(t, A, "list")
	adminLogged(t, A, "list", "")
	for _, id := range all {
		mustMatch(t, "queue list", queueEntry(list, id), `^`+id+` +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  alice@a\.test\n +\(451 4\.4\.1 (delivery temporarily suspended: )?cannot connect to mx\.[bd]\.test: .*connection refused\)\n +\S+@[bd]\.test\n$`)
	}
	mustMatch(t, "queue list", list, `^-- \d+ Kbytes in 7 Requests\.$`)

	show := queueOK(t, A, "show", idFlush)
	adminLogged(t, A, "show", idFlush)
	mustMatch(t, "queue show", show, `\AQueue ID:   `+idFlush+`\n`+
		`Status:     deferred until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(after 1 attempt\)\n`+
		`Arrival:    .+\n`+
		`Size:       \d+\n`+
		`Sender:     <alice@a\.test>\n`+
		`Client:     127\.0\.0\.1 \(helo client\.example\.com\), authenticated as alice@a\.test\n`+
		`Recipients:\n`+
		`  <bob@b\.test> +pending +451 4\.4\.1 cannot connect to mx\.b\.test: .*connection refused\n`+
		`Headers:\n`)
	mustMatch(t, "queue show", show, `^  Received: from client\.example\.com \(\[127\.0\.0\.1\]\)$`)
	mustMatch(t, "queue show", show, `^  Subject: `+tokFlush+`$`)
	mustNotMatch(t, "queue show", show, `Hello from A`) // headers only

	if out := queueOK(t, A, "hold", strings.ToLower(idHold)); out != idHold+": held\n" {
		t.Fatalf("tern queue hold printed %q", out)
	}
	adminLogged(t, A, "hold", idHold)
	mustMatch(t, "queue list", queueOK(t, A, "list"), `^`+idHold+`! +\d+ `)
	mustMatch(t, "queue show", queueOK(t, A, "show", idHold), `^Status:     held \(tern queue release `+idHold+`\)$`)
	out, errOut, code := queueCmd(t, A, "flush", idHold)
	if code != 1 || out != "" || errOut != "tern: "+idHold+" is held: release it first\n" {
		t.Fatalf("tern queue flush of a held message: status %d, %q %q", code, out, errOut)
	}
	checkUnknownIDs(t, A)

	// ---- with the server stopped: tern queue opens the spool itself
	A.Stop()
	list = queueOK(t, A, "list")
	mustMatch(t, "queue list (stopped)", list, `^`+idHold+`! +\d+ `)
	mustMatch(t, "queue list (stopped)", queueEntry(list, idFlush), `^`+idFlush+` +\d+ .*\n +\(451 4\.4\.1 cannot connect to mx\.b\.test: .*\)\n +bob@b\.test\n$`)
	mustMatch(t, "queue show (stopped)", queueOK(t, A, "show", idHold), `^Status:     held \(tern queue release `+idHold+`\)$`)
	mustMatch(t, "queue show (stopped)", queueOK(t, A, "show", idFlush), `^  Subject: `+tokFlush+`$`)
	if out := queueOK(t, A, "hold", idHoldOff); out != idHoldOff+": held\n" {
		t.Fatalf("tern queue hold (stopped) printed %q", out)
	}
	if out := queueOK(t, A, "bounce", idBounceOff); out != idBounceOff+": returned to sender\n" {
		t.Fatalf("tern queue bounce (stopped) printed %q", out)
	}
	if out := queueOK(t, A, "delete", idDeleteOff); out != idDeleteOff+": deleted\n" {
		t.Fatalf("tern queue delete (stopped) printed %q", out)
	}
	mustMatch(t, "queue flush (stopped)", queueOK(t, A, "flush"),
		`\A\d+ message\(s\) made due now\nnote: the server is not running; they are delivered when it starts\n\z`)
	checkUnknownIDs(t, A)
	list = queueOK(t, A, "list")
	for _, id := range []string{idBounceOff, idDeleteOff} {
		if strings.Contains(list, id) {
			t.Fatalf("%s still queued after bounce/delete:\n%s", id, list)
		}
	}

	// ---- running again: the holds survived, the rest (flushed while stopped) was tried again
	// at the start
	A.Start()
	list = queueOK(t, A, "list")
	mustMatch(t, "queue list", list, `^`+idHold+`! +\d+ `)
	mustMatch(t, "queue list", list, `^`+idHoldOff+`! +\d+ `)
	// The bounce made while stopped goes out now: a report to alice, from A's own name.
	bounce := A.WaitMessage(aliceA, tokBounceOff, 10*time.Second)
	checkAdminBounce(t, bounce, "bob@b.test")
	for _, id := range []string{idFlush, idDomain, idDead} {
		waitShow(t, A, id, `^Status:     deferred until .* \(after 2 attempts\)$`)
	}

	// B comes up; nothing moves by itself (an hour to the next attempt) until told.
	w.B.Start()
	queueOK(t, A, "flush", idFlush)
	adminLogged(t, A, "flush", idFlush)
	w.B.WaitMessage(bobB, tokFlush, 10*time.Second)
	gone(t, A, idFlush, 5*time.Second)

	if out := queueOK(t, A, "flush", "@b.test"); out != "1 message(s) made due now\n" {
		t.Fatalf("tern queue flush @b.test printed %q (the held ones do not count)", out)
	}
	w.B.WaitMessage(carolB, tokDomain, 10*time.Second)
	mustMatch(t, "queue show", queueOK(t, A, "show", idDead), `^Status:     deferred until .* \(after 2 attempts\)$`) // not b.test

	if out := queueOK(t, A, "flush"); out != "1 message(s) made due now\n" {
		t.Fatalf("tern queue flush printed %q (only the d.test message is deferred and not held)", out)
	}
	waitShow(t, A, idDead, `^Status:     deferred until .* \(after 3 attempts\)$`)

	if out := queueOK(t, A, "release", idHold); out != idHold+": released\n" {
		t.Fatalf("tern queue release printed %q", out)
	}
	adminLogged(t, A, "release", idHold)
	w.B.WaitMessage(bobB, tokHold, 10*time.Second)
	gone(t, A, idHold, 5*time.Second)

	if out := queueOK(t, A, "bounce", idHoldOff); out != idHoldOff+": returned to sender\n" {
		t.Fatalf("tern queue bounce printed %q", out)
	}
	adminLogged(t, A, "bounce", idHoldOff)
	checkAdminBounce(t, A.WaitMessage(aliceA, tokHoldOff, 10*time.Second), "bob@b.test")

	if out := queueOK(t, A, "delete", idDead); out != idDead+": deleted\n" {
		t.Fatalf("tern queue delete printed %q", out)
	}
	adminLogged(t, A, "delete", idDead)
	A.WaitQueueEmpty(10 * time.Second)

	// Once done, a message is gone for every command.
	out, errOut, code = queueCmd(t, A, "hold", idFlush)
	if code != 1 || errOut != "tern: there is no message "+idFlush+" in the queue (tern queue list shows them)\n" {
		t.Fatalf("tern queue hold of a delivered message: status %d, %q %q", code, out, errOut)
	}

	// Deleted messages got no report; the two bounced ones one each; B got what was delivered
	// and nothing else. A's queue is empty, so every report A made is in alice's Maildir;
	// once B's is too, so is every message B accepted.
	w.B.WaitQueueEmpty(10 * time.Second)
	for tok, want := range map[string]int{tokBounceOff: 1, tokHoldOff: 1, tokDead: 0, tokDeleteOff: 0, tokFlush: 0, tokHold: 0, tokDomain: 0} {
		if got := len(messagesWith(A, aliceA, tok)); got != want {
			t.Errorf("alice has %d report(s) on %s, want %d", got, tok, want)
		}
	}
	for tok, addr := range map[string]string{tokHoldOff: bobB, tokBounceOff: bobB, tokDeleteOff: carolB} {
		if got := messagesWith(w.B, addr, tok); len(got) != 0 {
			t.Errorf("B got the message %s that was bounced or deleted", tok)
		}
	}
}

// checkUnknownIDs runs every command that takes an id with one that is not queued: each exits
// with status 1 and says so; a malformed command is a usage error (status 2).
func checkUnknownIDs(t *testing.T, tn *Tern) {
	t.Helper()
	for _, op := range []string{"show", "hold", "release", "delete", "bounce", "flush"} {
		out, errOut, code := queueCmd(t, tn, op, "0000NOSUCHID")
		if code != 1 || out != "" || errOut != "tern: there is no message 0000NOSUCHID in the queue (tern queue list shows them)\n" {
			t.Errorf("tern queue %s 0000NOSUCHID: status %d, stdout %q, stderr %q", op, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"show"}, {"hold", "A", "B"}, {"frobnicate"}} {
		_, errOut, code := queueCmd(t, tn, args...)
		// One line: what was wrong, and where the usage is.
		if code != 2 || !regexp.MustCompile(`^tern queue( \w+)?: .*; see 'tern queue( \w+)? --help'\n$`).MatchString(errOut) {
			t.Errorf("tern queue %s: status %d, stderr %q, want a usage error", strings.Join(args, " "), code, errOut)
		}
	}
}

// checkAdminBounce checks a report made by tern queue bounce: a well-formed failure report,
// from A's own name (also when made with the server stopped), that says why, and what the last
// attempt found (B is down: tern's own finding, no server's reply).
func checkAdminBounce(t *testing.T, msg, rcpt string) {
	t.Helper()
	r := parseDSN(t, msg, testHostname, aliceA)
	checkFields(t, "recipient fields", r.Recipients[0], map[string]string{
		"Final-Recipient": "rfc822; " + regexp.QuoteMeta(rcpt),
		"Action":          "failed",
		"Status":          `5\.0\.0`,
		"Diagnostic-Code": `X-Tern; returned to sender by the administrator; last attempt: ` + suspended + `cannot connect to mx\.b\.test`,
		"Remote-MTA":      "",
	})
	mustMatch(t, "the human part", r.Human, `^<`+regexp.QuoteMeta(rcpt)+`>: returned to sender by the administrator; last attempt: `+
		suspended+`cannot connect to mx\.b\.test\r?$`)
}
