package test

import (
	"testing"
	"time"
)

// TestOpenSSLCloseNotify drives openssl s_client through STARTTLS on 25 and 587 and implicit
// TLS on 465. Every session ends with the server's close_notify: after QUIT, and when the idle
// timeout ends a session. Without it OpenSSL 3 says "unexpected eof while reading" (and
// s_client exits 1), and a client cannot tell our close from a truncation.
func TestOpenSSLCloseNotify(t *testing.T) {
	t.Parallel()
	openssl := needTool(t, "openssl")
	tn := startTern(t, ternOpts{Config: "[limits]\nidle_timeout = \"2s\"\n"})
	for _, tc := range []struct {
		name, addr, starttls string
		stdin, want          string
	}{
		{"smtp-quit", tn.SMTP, "smtp", "EHLO client.example\nQUIT\n", `221 2\.0\.0 Bye`},
		{"submission-quit", tn.Submission, "smtp", "EHLO client.example\nQUIT\n", `221 2\.0\.0 Bye`},
		{"submissions-quit", tn.Submissions, "", "EHLO client.example\nQUIT\n", `221 2\.0\.0 Bye`},
		// No QUIT: s_client (-ign_eof) waits until the server ends the session.
		{"submission-timeout", tn.Submission, "smtp", "EHLO client.example\n", `421 4\.4\.2 .*timeout exceeded`},
		{"submissions-timeout", tn.Submissions, "", "EHLO client.example\n", `421 4\.4\.2 .*timeout exceeded`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"s_client", "-connect", tc.addr, "-servername", testHostname, "-crlf", "-ign_eof"}
			if tc.starttls != "" {
				args = append(args, "-starttls", tc.starttls)
			}
			stdout, stderr, code := runTool(t, 30*time.Second, tc.stdin, openssl, args...)
			mustMatch(t, "s_client output", stdout, tc.want)
			mustNotMatch(t, "s_client output", stdout+stderr, `(?i)unexpected eof`)
			if code != 0 {
				t.Fatalf("s_client exited with status %d", code)
			}
		})
	}
}
