package test

import (
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// digestLogin finds the client's DIGEST-MD5 response among the base64 lines of a client's
// transcript and returns the user name and realm it answered with ("" for no realm).
func digestLogin(t testing.TB, out string) (user, realm string) {
	t.Helper()
	for _, b64 := range regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`).FindAllString(out, -1) {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !strings.Contains(string(b), "username=") {
			continue
		}
		u := regexp.MustCompile(`(?:^|,)\s*username="([^"]*)"`).FindStringSubmatch(string(b))
		if u == nil {
			t.Fatalf("DIGEST-MD5 response %q without a quoted username", b)
		}
		if r := regexp.MustCompile(`(?:^|,)\s*realm="([^"]*)"`).FindStringSubmatch(string(b)); r != nil {
			realm = r[1]
		}
		return u[1], realm
	}
	t.Fatalf("no DIGEST-MD5 response in the transcript:\n%s", out)
	return "", ""
}

// TestAuthDigestMD5Domains is DIGEST-MD5 with three local domains (example.test, offered first,
// then b.test and c.test) and an account in each, with swaks, curl and gsasl answering with the
// login forms they really use, read back from their transcripts: the first realm offered with
// the full address (swaks, curl and gsasl by default), and the account's own domain with the
// local part or the address (a realm given by hand). Every one gets in. An account whose
// password was set while b.test was not a local domain fails for a client that names b.test,
// like a wrong password, and the log says to set the password again.
func TestAuthDigestMD5Domains(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	needPerlTLS(t)
	needPerlModules(t, "Authen::SASL", "Digest::HMAC_MD5")
	curl := needTool(t, "curl")
	gsasl := needTool(t, "gsasl")
	const password = "Dig3st-domains"
	tn := startTern(t, ternOpts{
		// The harness puts --domain example.test first.
		ServeArgs: []string{"--auth-mechanisms", "all", "--domain", "b.test", "--domain", "c.test"},
		Config:    "[auth]\nfailure_window = \"1ms\"\n", // see startAuthTern
	})
	accounts := []string{"ann@example.test", "m@b.test", "joe@c.test"}
	for _, a := range accounts {
		tn.AddUserArgs(a, password, "--auth-mechanisms", "all", "--domain", "b.test", "--domain", "c.test")
	}
	// Set while the local domains were example.test and c.test only.
	tn.AddUserArgs("old@c.test", password, "--auth-mechanisms", "all", "--domain", "c.test")
	host, port := splitAddr(t, tn.Submission)
	ca := filepath.Join(tn.Data, "tls", "cert.pem")

	type client func(t *testing.T, account, user, realm string) (out, tok string, queued bool)
	clients := map[string]client{
		"swaks": func(t *testing.T, account, user, realm string) (string, string, bool) {
			tok := token(t)
			args := []string{"--server", host, "--port", port, "--tls", "--helo", "client.example.com",
				"--from", account, "--to", account, "--header", "Subject: swaks " + tok,
				"--auth", "DIGEST-MD5", "--auth-user", user, "--auth-password", password}
			if realm != "" {
				args = append(args, "--auth-extra", "realm="+realm)
			}
			stdout, stderr, _ := runToolEnv(t, 60*time.Second, nil, strings.NewReader(""), swaks, args...)
			return stdout + stderr, tok, true
		},
		"curl": func(t *testing.T, account, user, realm string) (string, string, bool) {
			if realm != "" {
				t.Fatal("curl takes no realm")
			}
			tok := token(t)
			file := writeFile(t, "msg", "From: "+account+"\r\nTo: "+account+"\r\nSubject: curl "+tok+"\r\n\r\nsent after AUTH DIGEST-MD5\r\n")
			_, errOut, _ := runTool(t, 60*time.Second, "", curl, "-v", "-sS", "smtp://"+tn.Submission+"/client.example.com",
				"--ssl-reqd", "-k", "-u", user+":"+password, "--login-options", "AUTH=DIGEST-MD5",
				"--mail-from", account, "--mail-rcpt", account, "--upload-file", file)
			return curlDialogue(errOut), tok, true
		},
		"gsasl": func(t *testing.T, account, user, realm string) (string, string, bool) {
			args := []string{"--smtp", "--connect=" + tn.Submission, "--starttls", "--x509-ca-file=" + ca,
				"--hostname=" + testHostname, "--quality-of-protection=qop-auth",
				"--authentication-id=" + user, "--password=" + password, "--mechanism=DIGEST-MD5"}
			if realm != "" {
				args = append(args, "--realm="+realm)
			}
			// Without --realm, gsasl asks for one on stdin ("optional"): nothing takes the first offered.
			stdout, stderr, _ := runTool(t, 60*time.Second, "", gsasl, args...)
			return strings.ReplaceAll(stdout, "\r\n", "\n") + stderr, "", false
		},
	}
	authOK := regexp.MustCompile(`(?m)^(<~  |< )?` + authOKRE + `\r?$`)
	authFailed := regexp.MustCompile(`(?m)^(<~\* |< )?` + authFailedRE + `\r?$`)

	for _, account := range accounts {
		local, domain, _ := strings.Cut(account, "@")
		for _, tc := range []struct {
			client              string
			user, realm         string // given to the client ("": the client's default realm)
			wantUser, wantRealm string // what it must send
		}{
			{"swaks", account, "", account, "example.test"},
			{"swaks", local, domain, local, domain},
			{"swaks", account, domain, account, domain},
			{"curl", account, "", account, "example.test"},
			{"gsasl", account, "", account, "example.test"},
			{"gsasl", local, domain, local, domain},
			{"gsasl", account, domain, account, domain},
		} {
			name := tc.client + "/" + account + "/user " + tc.user + " realm " + tc.wantRealm
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				out, tok, queued := clients[tc.client](t, account, tc.user, tc.realm)
				if u, r := digestLogin(t, out); u != tc.wantUser || r != tc.wantRealm {
					t.Fatalf("%s answered as user %q realm %q, want %q %q", tc.client, u, r, tc.wantUser, tc.wantRealm)
				}
				if !authOK.MatchString(out) {
					t.Fatalf("no 235 in the %s transcript:\n%s", tc.client, out)
				}
				if queued {
					tn.WaitMessage(account, tok, 10*time.Second)
				}
			})
		}
	}

	// old@c.test's secret has no hash for realm b.test: refused like a wrong password, with a
	// log line that tells the admin what to do; the forms it has still work.
	t.Run("gsasl/old@c.test/realm b.test", func(t *testing.T) {
		t.Parallel()
		out, _, _ := clients["gsasl"](t, "old@c.test", "old@c.test", "b.test")
		if u, r := digestLogin(t, out); u != "old@c.test" || r != "b.test" {
			t.Fatalf("gsasl answered as user %q realm %q", u, r)
		}
		if !authFailed.MatchString(out) || authOK.MatchString(out) {
			t.Fatalf("want a 535 in the gsasl transcript:\n%s", out)
		}
		re := regexp.MustCompile(`level=WARN msg="auth failed" .*mech=DIGEST-MD5 user=old@c\.test reason=".*no stored hash for old@c\.test in realm \\"b\.test\\" \(not a local domain when the password was set\): set the password again \(tern user passwd\)`)
		waitFor(t, 5*time.Second, "the log line naming the missing realm", func() bool { return re.MatchString(tn.Log()) })
	})
	t.Run("swaks/old@c.test/realm example.test", func(t *testing.T) {
		t.Parallel()
		out, tok, _ := clients["swaks"](t, "old@c.test", "old@c.test", "")
		if _, r := digestLogin(t, out); r != "example.test" || !authOK.MatchString(out) {
			t.Fatalf("realm %q; want a 235 for the first realm offered:\n%s", r, out)
		}
		tn.WaitMessage("old@c.test", tok, 10*time.Second)
	})
}
