package test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// gtube is rspamd's test string: a message holding it is rejected (rspamd's core, no rules
// needed).
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// startRspamd runs Debian's rspamd on loopback with a configuration of its own: its normal
// worker (HTTP) and its proxy worker in milter mode, scanning by itself. No Redis, no rules
// but the milter_headers module, no DNS (a resolver where nothing answers): GTUBE is found by
// rspamd's core. A list of three
// TLDs in place of the public suffix list makes it start in a fraction of a second rather than
// ten. It returns the two addresses once both accept connections.
func startRspamd(t *testing.T) (httpAddr, milterAddr string) {
	t.Helper()
	bin := needTool(t, "rspamd")
	dir := t.TempDir()
	httpAddr, milterAddr = freeLoopbackPort(t), freeLoopbackPort(t)
	tld := writeFile(t, "tld.dat", "com\norg\ntest\n")
	conf := writeFile(t, "rspamd.conf", fmt.Sprintf(`options {
  pidfile = "%[1]s/rspamd.pid";
  dbdir = "%[1]s";
  tempdir = "%[1]s";
  url_tld = "%[2]s";
  dns { nameserver = ["%[3]s"]; timeout = 1s; retransmits = 1; }
}
logging { type = "console"; level = "info"; }
actions { reject = 15; add_header = 6; greylist = 4; }
# The one Lua module loaded: it adds X-Spamd-Result and X-Spam-Status (through milter headers
# in both protocols).
modules { path = "/usr/share/rspamd/plugins/milter_headers.lua"; }
milter_headers { use = ["x-spamd-result", "x-spam-status"]; skip_local = false; skip_authenticated = false; }
worker "normal" { bind_socket = "%[4]s"; count = 1; }
worker "rspamd_proxy" {
  bind_socket = "%[5]s";
  milter = yes;
  count = 1;
  upstream "local" { default = yes; self_scan = yes; }
}
`, dir, tld, noResolver, httpAddr, milterAddr))
	// -i: the tests may run as root, which rspamd refuses without it.
	done := startProcess(t, &testutil.SyncBuffer{}, bin, "-f", "-i", "-c", conf)
	waitListening(t, httpAddr, done, "rspamd")
	waitListening(t, milterAddr, done, "rspamd")
	return httpAddr, milterAddr
}

// TestRspamd: Debian's rspamd, through its HTTP protocol (tern's [rspamd]) and through its
// proxy worker as a milter (tern's [[milter]]), rejects a message with GTUBE and lets a clean
// one through; over HTTP the clean one gets tern's X-Spam headers.
func TestRspamd(t *testing.T) {
	t.Parallel()
	httpAddr, milterAddr := startRspamd(t)
	for _, tc := range []struct {
		name, config, reject, clean string
	}{
		// rspamd's own X-Spam-Status and X-Spamd-Result, through its milter.add_headers; tern's
		// X-Spam-Score.
		{"http", fmt.Sprintf("[rspamd]\nurl = \"http://%s\"\n", httpAddr),
			`^554 "?5\.7\.1 Gtube pattern`, `(?m)^X-Spam-Status: No, score=0\.00\nX-Spamd-Result: default: False \[0\.00 / 15\.00\]\nX-Spam-Score: 0\.00$`},
		// The same fields, added by the proxy worker through the milter protocol.
		{"milter", fmt.Sprintf("[[milter]]\nname = \"rspamd\"\naddress = \"inet:%s\"\n", milterAddr),
			`^554 "?5\.7\.1 Gtube pattern`, `(?m)^X-Spamd-Result: default: False \[0\.00 / 15\.00\]$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tn := startTern(t, ternOpts{Config: tc.config})
			tn.AddUser("bob@example.test", "pw-bob-1")
			spam := token(t)
			err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test",
				"From: alice@example.org\nTo: bob@example.test\nSubject: "+spam+"\n\n"+gtube+"\n")
			if err == nil || !regexp.MustCompile(tc.reject).MatchString(err.Error()) {
				t.Fatalf("GTUBE: %v, want %s", err, tc.reject)
			}
			t.Logf("GTUBE refused: %v", err)
			clean := token(t)
			if err := sendSMTP(t, tn.SMTP, "alice@example.org", "bob@example.test",
				"From: alice@example.org\nTo: bob@example.test\nSubject: "+clean+"\n\nhello\n"); err != nil {
				t.Fatalf("clean message: %v", err)
			}
			got := tn.WaitMessage("bob@example.test", clean, 30*time.Second)
			t.Logf("clean message as delivered:\n%s", got)
			if tc.clean != "" {
				mustMatch(t, "delivered message", got, tc.clean)
			}
			if msgs := tn.Maildir("bob@example.test"); len(msgs) != 1 {
				t.Errorf("bob has %d messages, want 1", len(msgs))
			}
		})
	}
}
