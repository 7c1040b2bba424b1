package test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// tern queue on several messages at once, the built binary: several ids, ALL, each selection
// flag (--from, --to, --domain, --held, --deferred), --json parsed as JSON, and show --body
// octet for octet, while the server runs and while it is stopped. Nothing is delivered: B is
// down, d.test never answers, and the retry schedule is an hour.

// queueJSON is a line of tern queue list/show --json: postqueue -j's fields and tern's own.
type queueJSON struct {
	QueueName   string `json:"queue_name"`
	QueueID     string `json:"queue_id"`
	ArrivalTime int64  `json:"arrival_time"`
	MessageSize int64  `json:"message_size"`
	Sender      string `json:"sender"`
	Recipients  []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
		Status      string `json:"status"`
	} `json:"recipients"`
	Attempts    int    `json:"attempts"`
	NextAttempt int64  `json:"next_attempt"`
	Headers     string `json:"headers"`
}

// parseQueueJSON reads one JSON object a line, each with exactly the fields of queueJSON
// (and no other), and fails the test on anything else.
func parseQueueJSON(t *testing.T, out string) []queueJSON {
	t.Helper()
	var msgs []queueJSON
	for _, line := range strings.SplitAfter(out, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("not one object a line: %q", out)
		}
		var m queueJSON
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var keys map[string]any
		if err := json.Unmarshal([]byte(line), &keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"queue_name", "queue_id", "arrival_time", "message_size", "sender", "recipients"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("%q has no %s", line, k)
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// listedIDs are the queue ids of a tern queue list, in order.
func listedIDs(list string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`(?m)^([0-9A-F]{10,})[!*]? `).FindAllStringSubmatch(list, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestQueueSelect(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{BDown: true, Schedule: "1h"})
	A := w.A

	msgs := map[string]outMsg{}
	send := func(from, rcpt string, pad int) string {
		m := outMsg{From: from, Rcpts: []string{rcpt}, Tok: token(t), Pad: pad}
		id := w.submit(t, m)
		msgs[id] = m
		return id
	}
	m1 := send("", bobB, 0)              // alice -> b.test
	m2 := send("", carolB, 15000)        // alice -> b.test, 1.1 MB: a body file of its own
	m3 := send("", "someone@d.test", 0)  // alice -> d.test
	m4 := send("<>", "nobody@d.test", 0) // the null sender -> d.test
	for _, id := range []string{m1, m2, m3, m4} {
		waitLog(t, A, 10*time.Second, 1, "delivery deferred", "msgid="+id, "attempt=1")
	}
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
	selects := func(want []string, args ...string) {
		t.Helper()
		if got := listedIDs(queueOK(t, A, append([]string{"list"}, args...)...)); !slices.Equal(got, want) {
			t.Errorf("tern queue list %s: %v, want %v", strings.Join(args, " "), got, want)
		}
	}

	// ---- list: each selection flag, and --json
	selects(sorted(m1, m2, m3, m4))
	selects(sorted(m3, m4), "--domain", "d.test")
	selects(sorted(m1, m2, m3), "--from", "alice@a.test")
	selects([]string{m4}, "--from", "<>")
	selects([]string{m1}, "--to", "BOB@b.test")
	selects(sorted(m1, m2), "--to", "@b.test")
	selects(nil, "--held")
	selects(sorted(m1, m2, m3, m4), "--deferred")

	now := time.Now().Unix()
	all := parseQueueJSON(t, queueOK(t, A, "list", "--json"))
	if len(all) != 4 {
		t.Fatalf("list --json: %d objects, want 4", len(all))
	}
	for _, m := range all {
		sender := aliceA
		if m.QueueID == m4 {
			sender = ""
		}
		if m.QueueName != "deferred" || m.Sender != sender || m.ArrivalTime < now-60 || m.ArrivalTime > now ||
			m.MessageSize < int64(len(msgs[m.QueueID].text())) || m.Attempts != 1 || m.NextAttempt < now+3000 ||
			len(m.Recipients) != 1 || m.Recipients[0].Address != msgs[m.QueueID].Rcpts[0] ||
			!strings.HasPrefix(m.Recipients[0].DelayReason, "451 4.4.1 ") || m.Recipients[0].Status != "" || m.Headers != "" {
			t.Errorf("list --json: %+v", m)
		}
	}
	if got := parseQueueJSON(t, queueOK(t, A, "list", "--json", "--to", "@b.test")); len(got) != 2 || got[0].QueueID != min(m1, m2) {
		t.Errorf("list --json --to @b.test: %+v", got)
	}

	// ---- hold by a selection, then list what is held and what is deferred
	if out := queueOK(t, A, "hold", "--domain", "b.test"); out != strings.Join(sorted(m1, m2), ": held\n")+": held\n2 message(s) held\n" {
		t.Errorf("tern queue hold --domain b.test printed %q", out)
	}
	adminLogged(t, A, "hold", "")
	selects(sorted(m1, m2), "--held")
	selects(sorted(m3, m4), "--deferred")
	if out := queueOK(t, A, "hold", "ALL"); out != strings.Join(sorted(m3, m4), ": held\n")+": held\n2 message(s) held\n" {
		t.Errorf("tern queue hold ALL printed %q (the held ones are left out)", out)
	}
	if out := queueOK(t, A, "release", "--deferred", "ALL"); out != "0 message(s) released\n" {
		t.Errorf("release --deferred ALL printed %q", out)
	}
	if out := queueOK(t, A, "release", "--domain", "d.test"); out != strings.Join(sorted(m3, m4), ": released\n")+": released\n2 message(s) released\n" {
		t.Errorf("release --domain d.test printed %q", out)
	}
	for _, id := range []string{m3, m4} {
		waitShow(t, A, id, `^Status:     deferred until .* \(after 2 attempts\)$`)
	}

	// ---- several ids: each done or named in its own error, exit status 1
	out, errOut, code := queueCmd(t, A, "show", m1, "0000NOSUCH1", m2, "0000nosuch2")
	if code != 1 || errOut != "tern: there is no message 0000NOSUCH1 in the queue (tern queue list shows them)\n"+
		"tern: there is no message 0000NOSUCH2 in the queue (tern queue list shows them)\n" {
		t.Errorf("show of two ids and two unknown ones: status %d, stderr %q", code, errOut)
	}
	mustMatch(t, "show of several", out, `\AQueue ID:   `+m1+`\n(.+\n)+\nQueue ID:   `+m2+`\n`)
	out, errOut, code = queueCmd(t, A, "delete", "--from", "<>", m3)
	if code != 1 || out != "0 message(s) deleted\n" || !strings.Contains(errOut, m3+" is queued, but not selected by the --from") {
		t.Errorf("delete of an id the selection leaves out: status %d, %q %q", code, out, errOut)
	}

	// ---- show --json, show --body
	shown := parseQueueJSON(t, queueOK(t, A, "show", "--json", m3, m1))
	if len(shown) != 2 || shown[0].QueueID != m3 || shown[0].QueueName != "deferred" || shown[1].QueueName != "hold" ||
		shown[0].Recipients[0].Status != "pending" || !strings.Contains(shown[0].Headers, "Subject: "+msgs[m3].Tok+"\r\n") {
		t.Errorf("show --json: %+v", shown)
	}
	// What was sent, after tern's Received header, with the Date field a submission gets when
	// it has none at the end of its header section.
	checkBody := func(id string) {
		t.Helper()
		body := queueOK(t, A, "show", "--body", id)
		head, rest, _ := strings.Cut(msgs[id].text(), "\r\n\r\n")
		re := `\AReceived: from client\.example\.com \(\[127\.0\.0\.1\]\)\r\n(\t.*\r\n)*` +
			regexp.QuoteMeta(head+"\r\n") + `Date: [^\r\n]+\r\n\r\n` + regexp.QuoteMeta(rest) + `\z`
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("show --body %s is not the message sent after tern's Received header:\n%q", id, body)
		}
		if m := parseQueueJSON(t, queueOK(t, A, "list", "--json", "--to", msgs[id].Rcpts[0])); len(m) != 1 || m[0].MessageSize != int64(len(body)) {
			t.Errorf("show --body %s: %d octets, the queue says %+v", id, len(body), m)
		}
	}
	checkBody(m1)
	checkBody(m2)
	checkBody(m4)

	// ---- with the server stopped: the same, from the spool
	A.Stop()
	selects(sorted(m1, m2), "--held")
	selects([]string{m4}, "--deferred", "--from", "<>")
	if got := parseQueueJSON(t, queueOK(t, A, "list", "--json", "--held")); len(got) != 2 || got[0].QueueName != "hold" {
		t.Errorf("list --json --held (stopped): %+v", got)
	}
	checkBody(m2)
	if out := queueOK(t, A, "delete", "--to", "nobody@d.test", "ALL"); out != m4+": deleted\n1 message(s) deleted\n" {
		t.Errorf("delete --to nobody@d.test ALL (stopped) printed %q", out)
	}
	A.Start()

	// ---- running again: bounce by a selection, delete the rest
	if out := queueOK(t, A, "bounce", "--from", "alice@a.test", "--domain", "d.test"); out != m3+": returned to sender\n1 message(s) returned to sender\n" {
		t.Errorf("bounce --from --domain printed %q", out)
	}
	A.WaitMessage(aliceA, msgs[m3].Tok, 10*time.Second)
	if out := queueOK(t, A, "delete", m1, strings.ToLower(m2)); out != m1+": deleted\n"+m2+": deleted\n2 message(s) deleted\n" {
		t.Errorf("delete of two ids printed %q", out)
	}
	A.WaitQueueEmpty(10 * time.Second)
	if out := queueOK(t, A, "list", "--json"); out != "" {
		t.Errorf("list --json of an empty queue printed %q", out)
	}
	if out := queueOK(t, A, "delete", "ALL"); out != "0 message(s) deleted\n" {
		t.Errorf("delete ALL of an empty queue printed %q", out)
	}
}
