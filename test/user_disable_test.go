package test

import (
	"strings"
	"testing"
	"time"
)

// TestUserDisable: tern user disable stops an account from logging in over SMTP while the
// server runs (swaks gets 535), tern user list and show say so, its mail is still delivered,
// and tern user enable lets it in again.
func TestUserDisable(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	tn := startTern(t, ternOpts{})
	tn.AddUser("erin@example.test", "pw-erin")
	host, port := splitAddr(t, tn.Submission)
	login := func() (string, int) {
		out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", host, "--port", port, "--quit-after", "AUTH",
			"--auth", "PLAIN", "--auth-user", "erin@example.test", "--auth-password", "pw-erin")
		return out + errOut, code
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := tn.ternCmd("", args)
		if code != 0 {
			t.Fatalf("tern %s: %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	mustMatch(t, "tern user disable", cli("user", "disable", "Erin@example.test"), `^disabled erin@example\.test: it cannot log in`)
	if transcript, code := login(); code == 0 {
		t.Errorf("swaks logged in as a disabled account")
	} else {
		mustMatch(t, "swaks transcript (disabled)", transcript, `^<\*\* +535 5\.7\.8 `)
	}
	mustMatch(t, "tern user list", cli("user", "list"), `^erin@example\.test +\(disabled: tern user enable erin@example\.test\)$`)
	mustMatch(t, "tern user show", cli("user", "show", "erin@example.test"), `^disabled: +it cannot log in`)
	tok := token(t)
	mx, mxPort := splitAddr(t, tn.SMTP)
	if _, _, code := runTool(t, 60*time.Second, "", swaks, "--server", mx, "--port", mxPort, "--from", "x@example.org",
		"--to", "erin@example.test", "--header", "Subject: "+tok); code != 0 {
		t.Fatalf("swaks to a disabled account: exit status %d", code)
	}
	tn.WaitMessage("erin@example.test", tok, 10*time.Second)

	mustMatch(t, "tern user enable", cli("user", "enable", "erin@example.test"), `^enabled erin@example\.test`)
	if transcript, code := login(); code != 0 {
		t.Errorf("swaks as erin, enabled again: exit status %d", code)
	} else {
		mustMatch(t, "swaks transcript (enabled)", transcript, `^<[-~]  `+authOKRE+`$`)
	}
	if _, errOut, code := tn.ternCmd("", []string{"user", "disable", "nobody@example.test"}); code != 1 || !strings.Contains(errOut, "there is no account nobody@example.test") {
		t.Errorf("tern user disable nobody: %d %q", code, errOut)
	}
}
