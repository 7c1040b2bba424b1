package test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// genAuthNTLM runs the seeds' gen-auth (sasl2-bin; Authen::NTLM, which answers NTLMv1) for an
// AUTH NTLM exchange on d, with the type 1 message as the initial response, and returns the
// server's reply to the type 3 message. gen-auth reads the challenge from stdin after printing
// the request; Perl buffers a pipe, so it runs with autoflush on.
func genAuthNTLM(t *testing.T, d *dialog, user, password, domain string) string {
	t.Helper()
	genAuth := needTool(t, "gen-auth")
	needPerlModules(t, "Authen::NTLM")
	g := startLineProc(t, "perl", "-e", `$| = 1; my $f = shift; do $f; die $@ if $@;`,
		genAuth, "ntlm", user, password, domain)
	req := regexp.MustCompile(`^Auth Request: (\S+)$`).FindStringSubmatch(g.line())
	if req == nil {
		t.Fatal("gen-auth printed no Auth Request")
	}
	type2 := strings.TrimPrefix(d.cmd("AUTH NTLM "+req[1], `334 \S+`), "334 ")
	g.send(type2)
	resp := regexp.MustCompile(`Auth Response: (\S+)$`).FindStringSubmatch(g.line())
	if resp == nil {
		t.Fatal("gen-auth printed no Auth Response")
	}
	d.send(resp[1])
	lines, err := d.reply()
	if err != nil {
		t.Fatalf("reply to the type 3 message: %v", err)
	}
	return strings.Join(lines, "\n")
}

// TestAuthNTLMv1 is NTLM with NTLMv1 responses, the only ones swaks' default NTLM and the
// seeds' gen-auth send (Authen::NTLM): with auth.ntlm_v1 set they log in, with the right
// password only; without it (the default) they are refused with 535 5.7.8, and the log names
// the user the type 3 message carried.
func TestAuthNTLMv1(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	needPerlTLS(t)
	needPerlModules(t, "Authen::SASL", "Authen::NTLM")
	on := startAuthTernConfig(t, "ntlm_v1 = true\n")
	off := startAuthTern(t)

	swaksNTLM := func(t *testing.T, tn *Tern, password string) (tok, out string, code int) {
		host, port := splitAddr(t, tn.Submission)
		tok = token(t)
		stdout, stderr, code := runToolEnv(t, 60*time.Second, nil, strings.NewReader(""), swaks,
			"--server", host, "--port", port, "--tls", "--helo", "client.example.com",
			"--from", seedAccount, "--to", seedAccount, "--header", "Subject: swaks "+tok,
			"--auth", "NTLM", "--auth-user", seedUser, "--auth-password", password)
		return tok, stdout + stderr, code
	}
	refusedLogged := func(t *testing.T, tn *Tern, reason string) {
		t.Helper()
		re := regexp.MustCompile(`level=WARN msg="auth failed" .*remote=127\.0\.0\.1 .*mech=NTLM user=kenneth\.burgener reason=".*` + reason)
		waitFor(t, 5*time.Second, "an \"auth failed\" log line naming "+seedUser, func() bool { return re.MatchString(tn.Log()) })
	}
	const offReason = `NTLMv1 response \(24 octets; user \\"kenneth\.burgener\\", domain \\"[^"\\]*\\"\): refused, NTLMv1 is off \(auth\.ntlm_v1\)`

	t.Run("swaks/on/right password", func(t *testing.T) {
		t.Parallel()
		tok, out, code := swaksNTLM(t, on, seedPassword)
		mustMatch(t, "swaks transcript", out, `^<~  `+authOKRE+`$`)
		m := mustMatch(t, "swaks transcript", out, swaksQueuedRE)
		if code != 0 {
			t.Fatalf("swaks exit status %d", code)
		}
		checkDelivered(t, on, tok, m[2])
	})
	// A refused swaks: 535 in its transcript, a failure status, and the reason in the log.
	for _, tc := range []struct {
		name     string
		tn       *Tern
		password string
		reason   string
	}{
		{"swaks/on/wrong password", on, seedWrong, `wrong NTLMv1 response \(password; user \\"kenneth\.burgener\\"`},
		{"swaks/off", off, seedPassword, offReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, out, code := swaksNTLM(t, tc.tn, tc.password)
			mustMatch(t, "swaks transcript", out, `^<~\* `+authFailedRE+`$`)
			mustNotMatch(t, "swaks transcript", out, `^<~  235 |queued as`)
			if code == 0 {
				t.Fatal("swaks exit status 0 after a failed AUTH")
			}
			refusedLogged(t, tc.tn, tc.reason)
		})
	}
	for _, tc := range []struct {
		name, domain string
	}{{"no domain", ""}, {"domain", "EXAMPLE"}} {
		t.Run("gen-auth/on/"+tc.name, func(t *testing.T) {
			t.Parallel()
			d := ehlod(t, on.Submission, false) // loopback: AUTH without TLS
			mustMatch(t, "reply to gen-auth's type 3", genAuthNTLM(t, d, seedUser, seedPassword, tc.domain), `^`+authOKRE+`$`)
			d.cmd("MAIL FROM:<"+seedAccount+">", `250 .*`)
		})
	}
	t.Run("gen-auth/on/wrong password", func(t *testing.T) {
		t.Parallel()
		d := ehlod(t, on.Submission, false)
		mustMatch(t, "reply to gen-auth's type 3", genAuthNTLM(t, d, seedUser, seedWrong, ""), `^`+authFailedRE+`$`)
	})
	t.Run("gen-auth/off", func(t *testing.T) {
		t.Parallel()
		d := ehlod(t, off.Submission, false)
		mustMatch(t, "reply to gen-auth's type 3", genAuthNTLM(t, d, seedUser, seedPassword, ""), `^`+authFailedRE+`$`)
		refusedLogged(t, off, offReason)
	})
}
