package test

import (
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The AUTH mechanisms with real clients nobody here wrote: swaks, GNU gsasl, Python's smtplib,
// curl and msmtp, each mechanism with the right and a wrong password. Every client's own
// success report is distrusted (gsasl exits 0 without a matching mechanism, curl skips AUTH
// silently when none is offered): what counts is the 235 or 535 in the dialogue it shows, and,
// after a 235, the message in the Maildir with ESMTPSA in its Received header.

// startAuthTern starts tern offering every mechanism (--auth-mechanisms all), with the seeds'
// account holding the secrets of all of them (`tern user add --auth-mechanisms all`).
func startAuthTern(t *testing.T) *Tern {
	t.Helper()
	return startAuthTernConfig(t, "")
}

// startAuthTernConfig is startAuthTern with more lines for the configuration's [auth] table.
func startAuthTernConfig(t *testing.T, auth string) *Tern {
	t.Helper()
	tn := startTern(t, ternOpts{
		ServeArgs: []string{"--auth-mechanisms", "all"},
		// Each wrong password here is answered after the limiter's first delay (250ms): with a
		// failure window this short no failure counts towards the next one, so that the delays
		// do not grow and no block cuts off the parallel subtests, which all come from
		// 127.0.0.1 for the same account. The limiter itself is TestAuthLimits' business.
		Config: "[auth]\nfailure_window = \"1ms\"\n" + auth,
	})
	out := tn.AddUserArgs(seedAccount, seedPassword, "--auth-mechanisms", "all")
	mustMatch(t, "user add", out, `^added kenneth\.burgener@example\.test \(secrets for `+regexp.QuoteMeta(allMechs)+`\)$`)
	// When every subtest is done (and before the server stops): whatever the clients sent,
	// no password, right or wrong, is in the log, nor the base64 that carried it.
	t.Cleanup(func() {
		checkLogClean(t, tn, append(passwordForms(seedUser, seedPassword), passwordForms(seedUser, seedWrong)...)...)
	})
	return tn
}

// checkDelivered waits for the message with tok in the seed account's Maildir and checks that
// it came in over TLS, authenticated, as queued under id.
func checkDelivered(t *testing.T, tn *Tern, tok, id string) string {
	t.Helper()
	msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
	mustMatch(t, "Received", header(msg, "Received"), `\n\t\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\n\tby mx\.example\.test \(tern\) with ESMTPSA id `+id+`\n`)
	return msg
}

// waitFailureLogged waits for the log line of a failed AUTH with mech that names the client and
// the login (what fail2ban needs): the seeds' login, or the account it stands for.
func waitFailureLogged(t *testing.T, tn *Tern, mech string) {
	t.Helper()
	re := regexp.MustCompile(`level=WARN msg="auth failed" .*remote=127\.0\.0\.1 .*mech=` + regexp.QuoteMeta(mech) + ` user=kenneth\.burgener(@example\.test)? `)
	waitFor(t, 5*time.Second, "an \"auth failed\" log line for "+mech+" naming "+seedUser, func() bool { return re.MatchString(tn.Log()) })
}

// needPerlModules checks the Perl modules swaks loads for its AUTH mechanisms.
func needPerlModules(t testing.TB, mods ...string) {
	t.Helper()
	perl := needTool(t, "perl")
	for _, m := range mods {
		if _, errOut, code := runTool(t, 30*time.Second, "", perl, "-M"+m, "-e1"); code != 0 {
			missingTool(t, "perl "+m+" (for swaks AUTH)", &toolError{errOut})
		}
	}
}

// TestAuthSwaks authenticates with swaks (--auth-user/--auth-password over --tls on submission)
// with every mechanism it has: PLAIN, LOGIN, CRAM-MD5, CRAM-SHA1, DIGEST-MD5 and NTLM, the last
// in NTLMv2 (Authen::NTLM's ntlmv2(1), loaded by testdata/perl/NTLMv2.pm), since swaks sends
// NTLMv1 by default, which tern refuses unless auth.ntlm_v1 is set (also checked here).
func TestAuthSwaks(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	needPerlTLS(t)
	needPerlModules(t, "Authen::SASL", "Authen::NTLM", "Digest::HMAC_MD5", "Digest::SHA")
	perlDir, err := filepath.Abs(filepath.Join("testdata", "perl"))
	if err != nil {
		t.Fatal(err)
	}
	ntlmv2 := []string{"PERL5LIB=" + perlDir, "PERL5OPT=-MNTLMv2"}
	tn := startAuthTern(t)
	host, port := splitAddr(t, tn.Submission)

	run := func(t *testing.T, mech, password string, env []string, extra ...string) (tok, out string, code int) {
		tok = token(t)
		args := append([]string{"--server", host, "--port", port, "--tls", "--helo", "client.example.com",
			"--from", seedAccount, "--to", seedAccount, "--header", "Subject: swaks " + tok,
			"--auth", mech, "--auth-user", seedUser, "--auth-password", password}, extra...)
		stdout, stderr, code := runToolEnv(t, 60*time.Second, env, strings.NewReader(""), swaks, args...)
		return tok, stdout + stderr, code
	}
	refused := func(t *testing.T, out string, code int) {
		t.Helper()
		mustMatch(t, "swaks transcript", out, `^<~\* `+authFailedRE+`$`)
		mustMatch(t, "swaks transcript", out, `^\*\*\* No authentication type succeeded$`)
		mustNotMatch(t, "swaks transcript", out, `^<~  235 |queued as`)
		if code == 0 {
			t.Fatal("swaks exit status 0 after a failed AUTH")
		}
	}

	for _, tc := range []struct {
		name, mech string
		env        []string
		extra      []string
	}{
		{"PLAIN", "PLAIN", nil, nil},
		{"LOGIN", "LOGIN", nil, nil},
		{"CRAM-MD5", "CRAM-MD5", nil, nil},
		{"CRAM-SHA1", "CRAM-SHA1", nil, nil},
		// swaks builds DIGEST-MD5's digest-uri from the address it connects to
		// ("smtp/127.0.0.1"); a client that dials by name sends the host name.
		{"DIGEST-MD5", "DIGEST-MD5", nil, nil},
		{"DIGEST-MD5 by host name", "DIGEST-MD5", nil, []string{"--auth-extra", "dmd5-host=" + testHostname}},
		{"NTLM", "NTLM", ntlmv2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("right password", func(t *testing.T) {
				tok, out, code := run(t, tc.mech, seedPassword, tc.env, tc.extra...)
				mustMatch(t, "swaks transcript", out, `^ ~> AUTH `+tc.mech+`\b`)
				mustMatch(t, "swaks transcript", out, `^<~  `+authOKRE+`$`)
				m := mustMatch(t, "swaks transcript", out, swaksQueuedRE)
				if code != 0 {
					t.Fatalf("swaks exit status %d", code)
				}
				checkDelivered(t, tn, tok, m[2])
			})
			t.Run("wrong password", func(t *testing.T) {
				_, out, code := run(t, tc.mech, seedWrong, tc.env, tc.extra...)
				refused(t, out, code)
				waitFailureLogged(t, tn, tc.mech)
			})
		})
	}

	// swaks' default NTLM is NTLMv1 (24-octet responses): refused, right password or not,
	// unless auth.ntlm_v1 is set (TestAuthNTLMv1). The log names the user it carried.
	t.Run("NTLMv1 refused", func(t *testing.T) {
		t.Parallel()
		_, out, code := run(t, "NTLM", seedPassword, nil)
		refused(t, out, code)
		waitFor(t, 5*time.Second, "the log line of the refused NTLMv1 response", func() bool {
			return regexp.MustCompile(`msg="auth failed" .*mech=NTLM user=kenneth\.burgener .*NTLMv1 response \(24 octets; user \\"kenneth\.burgener\\", domain \\"MX\\"\): refused, NTLMv1 is off \(auth\.ntlm_v1\)`).MatchString(tn.Log())
		})
	})
}

// gsaslClientFirst decodes the client's first SASL message from a gsasl --smtp transcript.
func gsaslClientFirst(t testing.TB, out, mech string) string {
	t.Helper()
	m := mustMatch(t, "gsasl output", out, `^AUTH `+regexp.QuoteMeta(mech)+`\n334 \n(\S+)$`)
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatalf("client-first-message %q: %v", m[1], err)
	}
	return string(b)
}

// TestAuthGsasl authenticates with GNU SASL's gsasl --smtp: the SCRAM mechanisms (with channel
// binding over TLS: -PLUS, tls-exporter on TLS 1.3; and without), DIGEST-MD5, CRAM-MD5, PLAIN
// and LOGIN. gsasl verifies the server's certificate against tern's own (--x509-ca-file), and
// exits 0 whether or not it authenticated: the 235 in its output is what counts.
func TestAuthGsasl(t *testing.T) {
	t.Parallel()
	gsasl := needTool(t, "gsasl")
	tn := startAuthTern(t)
	ca := filepath.Join(tn.Data, "tls", "cert.pem")

	// gsasl 2.2.0 gives up by itself on a SCRAM mechanism without -PLUS over TLS while it has
	// channel-binding data ("mechanism error" before it sends anything), so those go with
	// --no-cb (gs2 flag "n") or without TLS, on loopback, where tern offers AUTH too.
	starttls := []string{"--starttls", "--x509-ca-file=" + ca}
	for _, tc := range []struct {
		name, mech string
		flags      []string
		gs2        string // how the SCRAM client-first-message must begin
	}{
		{"PLAIN", "PLAIN", starttls, ""},
		{"LOGIN", "LOGIN", starttls, ""},
		{"CRAM-MD5", "CRAM-MD5", starttls, ""},
		// -r/--hostname: the realm and digest-uri host (by default gsasl names the address it
		// connects to, which tern refuses; see TestAuthSwaks).
		{"DIGEST-MD5", "DIGEST-MD5", starttls, ""},
		{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1-PLUS", starttls, "p=tls-exporter,,n=" + seedUser + ",r="},
		{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS", starttls, "p=tls-exporter,,n=" + seedUser + ",r="},
		{"SCRAM-SHA-1 over TLS", "SCRAM-SHA-1", append([]string{"--no-cb"}, starttls...), "n,,n=" + seedUser + ",r="},
		{"SCRAM-SHA-256 over TLS", "SCRAM-SHA-256", append([]string{"--no-cb"}, starttls...), "n,,n=" + seedUser + ",r="},
		{"SCRAM-SHA-1 in clear text", "SCRAM-SHA-1", []string{"--no-starttls"}, "n,,n=" + seedUser + ",r="},
		{"SCRAM-SHA-256 in clear text", "SCRAM-SHA-256", []string{"--no-starttls"}, "n,,n=" + seedUser + ",r="},
	} {
		run := func(t *testing.T, password string) string {
			args := append([]string{"--smtp", "--connect=" + tn.Submission, "--hostname=" + testHostname,
				"--realm=" + testDomain, "--quality-of-protection=qop-auth",
				"--authentication-id=" + seedUser, "--password=" + password, "--mechanism=" + tc.mech}, tc.flags...)
			stdout, stderr, _ := runTool(t, 60*time.Second, "", gsasl, args...)
			// The dialogue is on stdout (server lines with their CR), the notes on stderr.
			out := strings.ReplaceAll(stdout, "\r\n", "\n") + stderr
			if tc.flags[0] != "--no-starttls" {
				mustMatch(t, "gsasl output", out, `^220 2\.0\.0 Ready to start TLS\n`)
				mustMatch(t, "gsasl output", out, `^TLS X\.509 Verification: The certificate is trusted\.`)
				mustMatch(t, "gsasl output", out, `^250-AUTH `+regexp.QuoteMeta(allMechs)+`$`)
			} else {
				mustNotMatch(t, "gsasl output", out, `^STARTTLS$|^TLS `)
				mustMatch(t, "gsasl output", out, `^250-AUTH `+regexp.QuoteMeta(withoutPlus(allMechs))+`$`)
			}
			mustMatch(t, "gsasl output", out, `^AUTH `+regexp.QuoteMeta(tc.mech)+`$`)
			if tc.gs2 != "" {
				if cf := gsaslClientFirst(t, out, tc.mech); !strings.HasPrefix(cf, tc.gs2) {
					t.Fatalf("client-first-message %q does not start with %q", cf, tc.gs2)
				}
			}
			return out
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("right password", func(t *testing.T) {
				out := run(t, seedPassword)
				mustMatch(t, "gsasl output", out, `^`+authOKRE+`$`)
				// For SCRAM and DIGEST-MD5 this is the server's proof that it knows the secret.
				mustMatch(t, "gsasl output", out, `^Client authentication finished \(server trusted\)`)
				mustNotMatch(t, "gsasl output", out, `^535 `)
			})
			t.Run("wrong password", func(t *testing.T) {
				out := run(t, seedWrong)
				mustMatch(t, "gsasl output", out, `^`+authFailedRE+`$`)
				mustNotMatch(t, "gsasl output", out, `^235 `)
				waitFailureLogged(t, tn, tc.mech)
			})
		})
	}
}

// TestAuthSmtplib logs in with Python's smtplib, SMTP.login() pinned to each mechanism it has
// (PLAIN, LOGIN, CRAM-MD5: it would pick CRAM-MD5 by itself), after starttls() on submission
// and with SMTP_SSL on submissions, then sends; a wrong password raises SMTPAuthenticationError
// with the 535.
func TestAuthSmtplib(t *testing.T) {
	t.Parallel()
	pythonExe(t)
	tn := startAuthTern(t)
	for _, conn := range []struct {
		name, connect, addr string
		pre                 [][]any
	}{
		{"starttls on submission", "plain", tn.Submission, [][]any{step("ehlo"), step("starttls"), step("ehlo")}},
		{"SMTP_SSL on submissions", "ssl", tn.Submissions, [][]any{step("ehlo")}},
	} {
		for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5"} {
			t.Run(conn.name+"/"+mech, func(t *testing.T) {
				t.Parallel()
				t.Run("right password", func(t *testing.T) {
					tok := token(t)
					steps := append(append([][]any{}, conn.pre...),
						step("login", mech, seedUser, seedPassword),
						step("mail", seedAccount, []string{}),
						step("rcpt", seedAccount, []string{}),
						step("data", "Subject: "+tok+"\n\nsent after smtplib login "+mech+"\n"),
						step("quit"))
					out, debug := smtplibRun(t, conn.connect, conn.addr, steps...)
					mustMatch(t, "smtplib", out, `^OFFERED `+regexp.QuoteMeta(allMechs)+`$`)
					mustMatch(t, "smtplib debug", debug, `send: 'AUTH `+mech+`[ \\]`)
					mustMatch(t, "smtplib", out, `^LOGIN `+authOKRE+`$`)
					mustNotMatch(t, "smtplib", out, `^EXCEPTION `)
					m := mustMatch(t, "smtplib", out, `^DATA 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
					checkDelivered(t, tn, tok, m[1])
				})
				t.Run("wrong password", func(t *testing.T) {
					out, debug := smtplibRun(t, conn.connect, conn.addr, append(append([][]any{}, conn.pre...),
						step("login", mech, seedUser, seedWrong),
						step("mail", seedAccount, []string{}),
						step("quit"))...)
					mustMatch(t, "smtplib debug", debug, `send: 'AUTH `+mech+`[ \\]`)
					mustMatch(t, "smtplib", out, `^EXCEPTION SMTPAuthenticationError\nLOGIN `+authFailedRE+`$`)
					mustMatch(t, "smtplib", out, `^MAIL 530 5\.7\.0 Authentication required$`)
					waitFailureLogged(t, tn, mech)
				})
			})
		}
	}
}

// TestAuthCurl authenticates with curl (--login-options AUTH=..., -u user:password): PLAIN,
// LOGIN, CRAM-MD5, DIGEST-MD5 and NTLM (curl answers NTLMv2 when the server sends target
// information, as tern does), with --ssl-reqd on submission and smtps:// on submissions.
// curl leaves AUTH out silently when it is not offered, so the 235 in -v is what counts; a
// wrong password is curl's exit status 67 (login denied) and the 535 in -v.
func TestAuthCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	version, _, _ := runTool(t, 10*time.Second, "", curl, "-V")
	if !regexp.MustCompile(`(?m)^Features:.* NTLM( |$)`).MatchString(version) {
		missingTool(t, "curl with NTLM", &toolError{"curl -V lists no NTLM feature"})
	}
	tn := startAuthTern(t)

	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "NTLM"} {
		for _, conn := range []struct {
			name  string
			url   string
			extra []string
		}{
			{"STARTTLS on submission", "smtp://" + tn.Submission + "/client.example.com", []string{"--ssl-reqd", "-k"}},
			{"smtps on submissions", "smtps://" + tn.Submissions + "/client.example.com", []string{"-k"}},
		} {
			run := func(t *testing.T, password string) (tok, out string, code int) {
				tok = token(t)
				file := writeFile(t, "msg", "From: "+seedAccount+"\r\nTo: "+seedAccount+"\r\nSubject: curl "+tok+"\r\n\r\nsent after AUTH "+mech+"\r\n")
				args := append([]string{"-v", "-sS", conn.url, "-u", seedUser + ":" + password, "--login-options", "AUTH=" + mech,
					"--mail-from", seedAccount, "--mail-rcpt", seedAccount, "--upload-file", file}, conn.extra...)
				_, errOut, code := runTool(t, 60*time.Second, "", curl, args...)
				out = curlDialogue(errOut)
				mustMatch(t, "curl -v", out, `^> AUTH `+mech+`\r?$`)
				return tok, out, code
			}
			t.Run(mech+"/"+conn.name, func(t *testing.T) {
				t.Parallel()
				// curl builds DIGEST-MD5's digest-uri from the realm tern offers ("smtp/example.test").
				t.Run("right password", func(t *testing.T) {
					tok, out, code := run(t, seedPassword)
					mustMatch(t, "curl -v", out, `^< `+authOKRE+`\r?$`)
					m := mustMatch(t, "curl -v", out, `^< 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})\r?$`)
					if code != 0 {
						t.Fatalf("curl exit status %d", code)
					}
					checkDelivered(t, tn, tok, m[1])
				})
				t.Run("wrong password", func(t *testing.T) {
					_, out, code := run(t, seedWrong)
					mustMatch(t, "curl -v", out, `^< `+authFailedRE+`\r?$`)
					mustMatch(t, "curl -v", out, `^curl: \(67\) Login denied\r?$`)
					mustNotMatch(t, "curl -v", out, `^< 235 |queued as|^> MAIL FROM`)
					if code != 67 {
						t.Fatalf("curl exit status %d, want 67 (login denied)", code)
					}
					waitFailureLogged(t, tn, mech)
				})
			})
		}
	}
}

// TestAuthMsmtp sends with msmtp (--auth=MECH --user --passwordeval), with each mechanism it
// has that tern offers and whose digest-uri problem does not stand in the way (plain, login,
// cram-md5, scram-sha-1, scram-sha-256), with --tls-starttls on submission and implicit TLS on
// submissions; a wrong password is msmtp's exit status 77 (EX_NOPERM) with the 535 shown.
func TestAuthMsmtp(t *testing.T) {
	t.Parallel()
	msmtp := needTool(t, "msmtp")
	version, _, _ := runTool(t, 10*time.Second, "", msmtp, "--version")
	mechs := []string{"plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256"}
	supported := regexp.MustCompile(`(?m)^Supported authentication methods:\n(.*)$`).FindStringSubmatch(version)
	for _, m := range mechs {
		if supported == nil || !strings.Contains(" "+supported[1]+" ", " "+m+" ") {
			missingTool(t, "msmtp with "+m, &toolError{"msmtp --version does not list it"})
		}
	}
	tn := startAuthTern(t)
	for _, mech := range mechs {
		for _, conn := range []struct{ name, addr, starttls string }{
			{"STARTTLS on submission", tn.Submission, "on"},
			{"implicit TLS on submissions", tn.Submissions, "off"},
		} {
			run := func(t *testing.T, password string) (tok, out string, code int) {
				tok = token(t)
				host, port := splitAddr(t, conn.addr)
				args := []string{"-C", "/dev/null", "-v", "--host=" + host, "--port=" + port,
					"--domain=client.example.com", "--from=" + seedAccount,
					"--tls=on", "--tls-starttls=" + conn.starttls, "--tls-certcheck=off",
					"--auth=" + mech, "--user=" + seedUser, "--passwordeval=echo '" + password + "'",
					"--", seedAccount}
				msg := "From: " + seedAccount + "\nTo: " + seedAccount + "\nSubject: msmtp " + tok + "\n\nsent after AUTH " + mech + "\n"
				stdout, stderr, code := runTool(t, 60*time.Second, msg, msmtp, args...)
				out = strings.ReplaceAll(stdout+stderr, "\r\n", "\n")
				mustMatch(t, "msmtp -v", out, `^--> AUTH `+strings.ToUpper(mech)+`( |$)`)
				return tok, out, code
			}
			t.Run(mech+"/"+conn.name, func(t *testing.T) {
				t.Parallel()
				t.Run("right password", func(t *testing.T) {
					tok, out, code := run(t, seedPassword)
					mustMatch(t, "msmtp -v", out, `^<-- `+authOKRE+`$`)
					m := mustMatch(t, "msmtp -v", out, `^<-- 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
					if code != 0 {
						t.Fatalf("msmtp exit status %d", code)
					}
					checkDelivered(t, tn, tok, m[1])
				})
				t.Run("wrong password", func(t *testing.T) {
					_, out, code := run(t, seedWrong)
					mustMatch(t, "msmtp -v", out, `^msmtp: server message: `+authFailedRE+`$`)
					mustNotMatch(t, "msmtp -v", out, `^<-- 235 |queued as`)
					if code != 77 {
						t.Fatalf("msmtp exit status %d, want 77 (EX_NOPERM)", code)
					}
					waitFailureLogged(t, tn, strings.ToUpper(mech))
				})
			})
		}
	}
}
