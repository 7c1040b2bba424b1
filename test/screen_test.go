package test

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/testutil"
)

// screenMessage is a small message for the screen tests.
func screenMessage(subject string) string {
	return "From: <alice@sender.test>\r\nTo: <bob@example.test>\r\nSubject: " + subject + "\r\n\r\nscreened\r\n"
}

// sendAuthenticated sends a message as bob@example.test, logged in on the submission listener
// (swaks), which screening never touches, and waits for its delivery.
func sendAuthenticated(t *testing.T, swaks string, tn *Tern, password, subject string) {
	t.Helper()
	out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", tn.Submission, "--helo", "client.example.test",
		"--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", password,
		"--from", "bob@example.test", "--to", "bob@example.test", "--header", "Subject: "+subject)
	if code != 0 {
		t.Fatalf("swaks: exit %d\n%s\n%s", code, out, errOut)
	}
	tn.WaitMessage("bob@example.test", subject, 10*time.Second)
}

// TestScreenDNSBL: through the binary, with DNS lists served by the loopback DNS server. A
// client the block list names (127.0.0.1) is refused at RCPT with 554 5.7.1 naming the list;
// an unlisted one (127.0.0.2, whose lookup in a second list fails) is accepted; one listed but
// on the allow list too (127.0.0.3) is accepted, and so is a listed one in an exempt network
// (127.0.0.4); the listed client authenticated on the submission listener sends (swaks).
func TestScreenDNSBL(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	z := testutil.StartDNS(t,
		"1.0.0.127.zen.example.test. A 127.0.0.2",
		"3.0.0.127.zen.example.test. A 127.0.0.4",
		"3.0.0.127.wl.example.test. A 127.0.10.2",
		"4.0.0.127.zen.example.test. A 127.0.0.2",
	)
	z.Fail("2.0.0.127.down.example.test", dns.RcodeServerFailure)
	tn := startTern(t, ternOpts{Config: `[screen]
dnsbl_sites = ["zen.example.test=127.0.0.[2..11]*2", "down.example.test*2", "wl.example.test=127.0.[0..255].[1..3]*-5"]
dnsbl_threshold = 2
exempt = ["127.0.0.4/32"]
`, ServeArgs: []string{"--resolver", z.Addr}})
	tn.AddUser("bob@example.test", "screen-pw-1")

	d := dial(t, tn.SMTP)
	d.expect(`220 .*`)
	d.ehlo("client.sender.test")
	d.cmd("MAIL FROM:<alice@sender.test>", `250 .*`)
	d.cmd("RCPT TO:<bob@example.test>", `554 5\.7\.1 Service unavailable; client \[127\.0\.0\.1\] blocked using zen\.example\.test$`)
	d.cmd("QUIT", `221 .*`)

	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		d := dialFrom(t, ip, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("client.sender.test")
		d.sendMessage("alice@sender.test", "bob@example.test", screenMessage("from "+ip))
		d.cmd("QUIT", `221 .*`)
		tn.WaitMessage("bob@example.test", "from "+ip, 10*time.Second)
	}

	sendAuthenticated(t, swaks, tn, "screen-pw-1", "authenticated and listed")
	waitLog(t, tn, 10*time.Second, 1, "client screened", "remote=127.0.0.1", "dnsbl_score=2", "dnsbl=zen.example.test")
	waitLog(t, tn, 10*time.Second, 1, "dnsbl lookup failed, not counted", "remote=127.0.0.2")
}

// TestScreenPregreet: with pregreet_wait, a client that talks before the greeting gets 554
// 5.5.1 and is disconnected; Python's smtplib and swaks wait for the greeting and send.
func TestScreenPregreet(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	pythonExe(t)
	tn := startTern(t, ternOpts{Config: "[screen]\npregreet_wait = \"2s\"\n"})
	tn.AddUser("bob@example.test", "screen-pw-2")

	d := dial(t, tn.SMTP)
	d.write("EHLO early.example.test\r\n")
	d.expect(`554 5\.5\.1 Protocol error: client talked before the greeting, closing$`)
	d.expectClosed()
	waitLog(t, tn, 10*time.Second, 1, "pregreet: client talked before the greeting")

	out, _ := smtplibRun(t, "plain", tn.SMTP,
		step("ehlo"),
		step("send_message", map[string]string{"from": "alice@sender.test", "to": "bob@example.test", "subject": "patient smtplib", "body": "waited\n"}),
		step("quit"))
	mustMatch(t, "smtplib", out, `^SEND_MESSAGE 0 refused=\{\}$`)
	tn.WaitMessage("bob@example.test", "patient smtplib", 10*time.Second)

	out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", tn.SMTP, "--helo", "client.sender.test",
		"--from", "alice@sender.test", "--to", "bob@example.test", "--header", "Subject: patient swaks", "--pipeline")
	if code != 0 {
		t.Fatalf("swaks: exit %d\n%s\n%s", code, out, errOut)
	}
	tn.WaitMessage("bob@example.test", "patient swaks", 10*time.Second)
}

// TestScreenReverseDNS: with reject_unknown_client, a client whose name is forward-confirmed
// (127.0.0.1) sends, and the Received header names it as Postfix does; one without a PTR
// record (127.0.0.2) gets 550 5.7.25, one whose PTR lookup fails (127.0.0.3) 450 4.7.25, one
// whose PTR name does not point back (127.0.0.4) 550 5.7.25.
func TestScreenReverseDNS(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t,
		"1.0.0.127.in-addr.arpa. PTR client.sender.test.", "client.sender.test. A 127.0.0.1",
		"4.0.0.127.in-addr.arpa. PTR liar.sender.test.", "liar.sender.test. A 192.0.2.1",
	)
	z.Fail("3.0.0.127.in-addr.arpa", dns.RcodeServerFailure)
	tn := startTern(t, ternOpts{Config: "[screen]\nreject_unknown_client = true\n", ServeArgs: []string{"--resolver", z.Addr}})
	tn.AddUser("bob@example.test", "screen-pw-3")

	d := dial(t, tn.SMTP)
	d.expect(`220 .*`)
	d.ehlo("helo.sender.test")
	d.sendMessage("alice@sender.test", "bob@example.test", screenMessage("named client"))
	msg := tn.WaitMessage("bob@example.test", "named client", 10*time.Second)
	mustMatch(t, "Received", header(msg, "Received"), `^Received: from helo\.sender\.test \(client\.sender\.test \[127\.0\.0\.1\]\)`)

	for ip, want := range map[string]string{
		"127.0.0.2": `550 5\.7\.25 Client host rejected: cannot find your hostname, \[127\.0\.0\.2\]$`,
		"127.0.0.3": `450 4\.7\.25 Client host rejected: cannot find your hostname, \[127\.0\.0\.3\]$`,
		"127.0.0.4": `550 5\.7\.25 Client host rejected: cannot find your hostname, \[127\.0\.0\.4\]$`,
	} {
		d := dialFrom(t, ip, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("helo.sender.test")
		d.cmd("MAIL FROM:<alice@sender.test>", `250 .*`)
		d.cmd("RCPT TO:<bob@example.test>", want)
		d.cmd("QUIT", `221 .*`)
	}
	waitLog(t, tn, 10*time.Second, 1, "client screened", "remote=127.0.0.4", "name=unknown", "ptr=liar.sender.test")
}

// TestScreenGreylist: with greylisting and a 1s delay, swaks's first attempt gets 450 4.7.1;
// retried after the delay, it is accepted, and again at once after a restart (the greylist is
// saved at shutdown); an authenticated client is never greylisted.
func TestScreenGreylist(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	curl := needTool(t, "curl")
	tn := startTern(t, ternOpts{Config: "[screen]\ngreylist = true\ngreylist_delay = \"1s\"\n",
		ServeArgs: []string{"--metrics", "127.0.0.1:0"}})
	tn.AddUser("bob@example.test", "screen-pw-4")
	send := func() (string, int) {
		out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", tn.SMTP, "--helo", "client.sender.test",
			"--from", "alice@sender.test", "--to", "bob@example.test", "--header", "Subject: greylisted")
		return out + errOut, code
	}
	out, code := send()
	if code == 0 || !strings.Contains(out, "450 4.7.1 <bob@example.test>: Recipient address rejected: Greylisted, try again in") {
		t.Fatalf("first attempt: exit %d, want a 450 4.7.1:\n%s", code, out)
	}
	// Retry as a real server would, until the configured delay has passed.
	deadline := time.Now().Add(30 * time.Second)
	greylisted := 0
	for code != 0 {
		greylisted++
		if time.Now().After(deadline) {
			t.Fatalf("still greylisted after 30s:\n%s", out)
		}
		if !strings.Contains(out, "Greylisted") {
			t.Fatalf("retry: exit %d:\n%s", code, out)
		}
		time.Sleep(200 * time.Millisecond) // polling for the configured delay to pass
		out, code = send()
	}
	tn.WaitMessage("bob@example.test", "greylisted", 10*time.Second)
	// Each refusal is counted, by the check and by its reply.
	_, body := scrape(t, curl, metricsAddr(t, tn), "/metrics")
	for _, series := range []string{`tern_screen_refusals_total{check="greylist"}`,
		`tern_smtp_commands_refused_total{code="450 4.7.1",command="rcpt",listener="smtp"}`} {
		if got := sample(body, series); got != float64(greylisted) {
			t.Errorf("%s = %v, want %d", series, got, greylisted)
		}
	}

	// The triplet is remembered across a restart: the next message passes at once.
	tn.Restart()
	waitLog(t, tn, 10*time.Second, 1, "greylist loaded", "triplets=1")
	if out, code = send(); code != 0 {
		t.Fatalf("after the restart: exit %d, want the triplet still allowed:\n%s", code, out)
	}

	sendAuthenticated(t, swaks, tn, "screen-pw-4", "authenticated, not greylisted")
}
