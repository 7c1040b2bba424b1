package test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metricsAddr is the metrics endpoint's address, as tern printed it.
func metricsAddr(t *testing.T, tn *Tern) string {
	t.Helper()
	return mustMatch(t, "tern's output", tn.Log(), `tern: metrics listening on http://(\S+)/metrics$`)[1]
}

// scrape fetches path from the metrics endpoint with curl and returns its status and body.
func scrape(t *testing.T, curl, addr, path string) (int, string) {
	t.Helper()
	out, _, code := runTool(t, 10*time.Second, "", curl, "-sS", "-w", "\n%{http_code}", "http://"+addr+path)
	if code != 0 {
		t.Fatalf("curl %s: exit %d", path, code)
	}
	i := strings.LastIndexByte(out, '\n')
	status, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %s: no status in %q", path, out)
	}
	return status, out[:i]
}

// sample is the value of the series line (name{labels}) in a scrape; -1 when it is missing.
func sample(scrape, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(scrape)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestMetrics: tern serve --metrics counts what a real run does (a message accepted and
// delivered, one rejected, a recipient refused, a failed and a good AUTH, a MAIL past the
// account's rate limit), the scrape passes promtool's lint, and
// /healthz and /readyz answer, /readyz with 503 while the server drains its sessions.
func TestMetrics(t *testing.T) {
	curl := needTool(t, "curl")
	promtool := needTool(t, "promtool")
	tn := startTern(t, ternOpts{ServeArgs: []string{"--metrics", "127.0.0.1:0"}, Config: "[rate]\naccount_messages = 1\n"})
	tn.AddUser("alice@"+testDomain, "alicepw")
	addr := metricsAddr(t, tn)

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := scrape(t, curl, addr, path); code != 200 {
			t.Errorf("%s: %d %q, want 200", path, code, body)
		}
	}

	// Accepted on the MX port, delivered to the mailbox.
	d := ehlod(t, tn.SMTP, false)
	d.cmd("MAIL FROM:<a@remote.example>", `250 .*`)
	d.cmd("RCPT TO:<nobody@"+testDomain+">", `550 5\.1\.1 .*`) // refused, counted by its code
	d.cmd("RCPT TO:<alice@"+testDomain+">", `250 .*`)
	d.cmd("DATA", `354 .*`)
	d.write("Subject: counted\r\n\r\nmetrics-token-1\r\n.\r\n")
	d.expect(`250 2.0.0 Ok: queued .*`)
	// Rejected: a bare LF in the message.
	d.cmd("MAIL FROM:<>", `250 .*`)
	d.cmd("RCPT TO:<alice@"+testDomain+">", `250 .*`)
	d.cmd("DATA", `354 .*`)
	d.write("Subject: bad\r\n\r\nbare\nLF\r\n.\r\n")
	rejected := d.expect(`5\d\d 5\.\d\.\d .*`)
	d.cmd("QUIT", `221 .*`)
	tn.WaitMessage("alice@"+testDomain, "metrics-token-1", 10*time.Second)

	// AUTH on the implicit TLS port: a wrong password, then the right one.
	s := ehlod(t, tn.Submissions, true)
	plain := func(pw string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@"+testDomain+"\x00"+pw))
	}
	s.cmd(plain("wrong"), `535 5.7.8 .*`)
	s.cmd(plain("alicepw"), `235 .*`)
	// rate.account_messages = 1: the second MAIL is past the account's limit.
	s.cmd("MAIL FROM:<alice@"+testDomain+">", `250 .*`)
	s.cmd("RSET", `250 .*`)
	s.cmd("MAIL FROM:<alice@"+testDomain+">", `450 4\.7\.1 .*`)
	s.cmd("QUIT", `221 .*`)

	// The delivery is counted once the mailbox deliverer has returned: wait for it.
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var code int
		code, body = scrape(t, curl, addr, "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		if sample(body, `tern_delivery_attempts_total{result="delivered",transport="maildir"}`) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no maildir delivery counted in 10s:\n%s", body)
		}
	}
	code := strings.Fields(rejected)[0] + " " + strings.Fields(rejected)[1]
	for series, want := range map[string]float64{
		`tern_smtp_messages_accepted_total{listener="smtp"}`:                                       1,
		fmt.Sprintf(`tern_smtp_messages_rejected_total{code=%q,listener="smtp"}`, code):            1,
		`tern_smtp_connections_total{listener="smtp"}`:                                             1,
		`tern_smtp_connections_total{listener="submissions"}`:                                      1,
		`tern_smtp_commands_refused_total{code="550 5.1.1",command="rcpt",listener="smtp"}`:        1,
		`tern_smtp_commands_refused_total{code="450 4.7.1",command="mail",listener="submissions"}`: 1,
		`tern_rate_refusals_total{limit="account-messages"}`:                                       1,
		`tern_smtp_auth_total{mechanism="PLAIN",result="failure"}`:                                 1,
		`tern_smtp_auth_total{mechanism="PLAIN",result="success"}`:                                 1,
		`tern_smtp_message_size_bytes_count`:                                                       1,
		`tern_delivery_latency_seconds_count{transport="maildir"}`:                                 1,
		// The tests' resolver answers nothing: SPF is a temperror (accepted by default), and
		// the message has no signature.
		`tern_auth_spf_total{result="temperror"}`: 1,
		`tern_auth_dkim_total{result="none"}`:     1,
		`tern_queue_messages`:                     0,
		`tern_queue_held_messages`:                0,
	} {
		if got := sample(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes", "tern_queue_oldest_message_age_seconds"} {
		if sample(body, series) < 0 {
			t.Errorf("%s missing", series)
		}
	}
	mustNotMatch(t, "scrape", body, `alice|example\.test|127\.0\.0\.1`) // no address in a label

	if out, errOut, code := runTool(t, 30*time.Second, body, promtool, "check", "metrics"); code != 0 || strings.TrimSpace(out+errOut) != "" {
		t.Errorf("promtool check metrics: exit %d\n%s%s", code, out, errOut)
	}

	// A session in the middle of DATA holds the shutdown; /readyz says 503 meanwhile, /healthz
	// still 200.
	busy := ehlod(t, tn.SMTP, false)
	busy.cmd("MAIL FROM:<>", `250 .*`)
	busy.cmd("RCPT TO:<alice@"+testDomain+">", `250 .*`)
	busy.cmd("DATA", `354 .*`)
	busy.write("Subject: during shutdown\r\n\r\n")
	tn.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := scrape(t, curl, addr, "/readyz"); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not turn 503 during the shutdown")
		}
	}
	if code, _ := scrape(t, curl, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz during shutdown: %d, want 200", code)
	}
	busy.write("metrics-token-2\r\n.\r\n")
	busy.expect(`250 2.0.0 Ok: queued .*`)
	if code, ok := tn.Wait(15 * time.Second); !ok || code != 0 {
		t.Fatalf("tern after SIGTERM: exited=%v status %d", ok, code)
	}
}

// TestMetricsPublicRefused: a metrics address that is not loopback is refused unless
// metrics.allow_public says otherwise.
func TestMetricsPublicRefused(t *testing.T) {
	_, errOut, code := runTool(t, 30*time.Second, "", ternBin, "serve", "--data", t.TempDir(), "--domain", testDomain,
		"--smtp", "127.0.0.1:0", "--submission", "", "--submissions", "", "--metrics", "0.0.0.0:0")
	if code == 0 {
		t.Fatal("tern serve --metrics 0.0.0.0:0 started")
	}
	mustMatch(t, "stderr", errOut, `metrics\.listen \(--metrics\) "0\.0\.0\.0:0": not a loopback address.*allow_public`)
}
