package test

import (
	"strings"
	"testing"
)

// TestLookupsSeeCLIChanges: the running server answers RCPT TO from its account lookup cache,
// and each change another process makes to the account store (tern user, tern alias) is
// seen by the next RCPT TO, with no wait.
func TestLookupsSeeCLIChanges(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	cli := func(args ...string) {
		t.Helper()
		if out, errOut, code := tn.ternCmd("", args); code != 0 {
			t.Fatalf("tern %s: %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	const (
		ok      = `250 2\.1\.5 .*`
		unknown = `550 5\.1\.1 .*User unknown.*`
	)
	d := ehlod(t, tn.SMTP, false)
	d.cmd("MAIL FROM:<x@example.org>", `250 .*`)
	// rcpt asks twice: the second answer is the cache's.
	rcpt := func(addr, want string) {
		t.Helper()
		for range 2 {
			d.cmd("RCPT TO:<"+addr+">", want)
		}
	}
	for _, step := range []struct {
		change func() // a tern command, run while the server runs
		addr   string
		want   string
	}{
		{nil, "bob@example.test", unknown},
		{func() { tn.AddUser("bob@example.test", "pw") }, "bob@example.test", ok},
		{func() { cli("alias", "add", "info@example.test", "bob@example.test") }, "info@example.test", ok},
		{func() { cli("user", "disable", "bob@example.test") }, "info@example.test", ok},
		{func() { cli("alias", "del", "info@example.test") }, "info@example.test", unknown},
		{func() { cli("user", "del", "bob@example.test") }, "bob@example.test", unknown},
	} {
		if step.change != nil {
			step.change()
		}
		rcpt(step.addr, step.want)
	}
	d.cmd("QUIT", `221 .*`)
}
