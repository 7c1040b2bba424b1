package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// internalPrefix matches an internal package's name used as a message prefix ("safeio: ",
// "smtpclient: "): what a person reads names the problem, not the code that found it. (The
// program's own "tern: " and "usage: " are not package names.)
var internalPrefix = regexp.MustCompile(`(?:^|[\s(])(accounts|admin|app|authstr|config|delivery|dsn|envelope|idna|krb5|lmtp|maildir|policy|queue|remote|safeio|sasl|send|sevenbit|smtp|smtpclient|smtpserver|sqlite|tlsutil|toml): `)

// cliCase is one command run by hand the way an administrator gets it wrong.
type cliCase struct {
	name  string
	args  []string
	stdin string
	code  int
	want  string // a regexp over standard error and output together
	// noData is a data directory that must still not exist afterwards (nothing written).
	noData string
}

// runCLICases runs each case with the real binary and checks its exit status, that its output
// names the problem, and that no internal package prefix leaks into it.
func runCLICases(t *testing.T, bin string, cases []cliCase, cred *syscall.Credential) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runAs(t, cred, tc.stdin, bin, tc.args...)
			all := errOut + out
			if code != tc.code {
				t.Fatalf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			mustMatch(t, "output", all, tc.want)
			mustNotMatch(t, "output", all, internalPrefix.String())
			if tc.noData != "" {
				if _, err := os.Lstat(tc.noData); !os.IsNotExist(err) {
					t.Fatalf("%s was made (%v): nothing may be written before the settings are checked", tc.noData, err)
				}
			}
		})
	}
}

// runAs is runTool as another user (cred nil: as this one).
func runAs(t *testing.T, cred *syscall.Credential, stdin, bin string, args ...string) (string, string, int) {
	t.Helper()
	if cred == nil {
		return runTool(t, 30*time.Second, stdin, bin, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// TestCLIMessages runs every command's error paths by hand (bad settings, a port in use, a
// missing file, an unknown account or message, a bad AUTH string, a server that is down) and
// checks that each says what failed and where, in words, with no package prefix; and that
// tern serve refuses a bad domain, address or port before it writes anything.
func TestCLIMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := func(name string) string { return filepath.Join(dir, name) }
	serve := func(d string, args ...string) []string {
		return append([]string{"serve", "--data", d, "--submission", "", "--submissions", ""}, args...)
	}
	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	broken := filepath.Join(dir, "broken.toml")
	badDomain := filepath.Join(dir, "bad-domain.toml")
	for p, s := range map[string]string{
		broken:    "hostname = \"mx.example.test\"\ndomains = [\n",
		badDomain: "domains = [\"example.test\", \"bad_domain!\"]\n[listen]\nsmtp = \"127.0.0.1:0\"\n",
	} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	users := data("users")
	if _, e, c := runTool(t, 30*time.Second, "pw\n", ternBin, "user", "add", "--data", users, "--password-stdin", "bob@example.test"); c != 0 {
		t.Fatalf("user add: %s", e)
	}

	runCLICases(t, ternBin, []cliCase{
		{name: "serve bad domain", args: serve(data("d1"), "--smtp", "127.0.0.1:0", "--domain", "not a domain"), code: 1,
			want: `^tern: invalid setting: domains \(--domain\) "not a domain": not a domain name: ' ' may not appear in one`, noData: data("d1")},
		{name: "serve port out of range", args: serve(data("d2"), "--smtp", "127.0.0.1:99999"), code: 1,
			want: `^tern: invalid setting: listen\.smtp \(--smtp\) "127\.0\.0\.1:99999": the port 99999 is not between 0 and 65535$`, noData: data("d2")},
		{name: "serve port not a number", args: serve(data("d3"), "--smtp", "127.0.0.1:smtp"), code: 1,
			want: `the port "smtp" is not a number`, noData: data("d3")},
		{name: "serve bad host", args: serve(data("d4"), "--smtp", "bad host!:25"), code: 1,
			want: `the host "bad host!" is neither an IP address nor a host name`, noData: data("d4")},
		{name: "serve no port", args: serve(data("d5"), "--smtp", "127.0.0.1"), code: 1,
			want: `want HOST:PORT, like 127\.0\.0\.1:25`, noData: data("d5")},
		{name: "serve bad hostname", args: serve(data("d6"), "--smtp", "127.0.0.1:0", "--hostname", "mx example"), code: 1,
			want: `hostname \(--hostname\) "mx example": not a domain name`, noData: data("d6")},
		{name: "serve two problems", args: serve(data("d7"), "--smtp", "127.0.0.1:99999", "--domain", "a b"), code: 1,
			want: `^tern: invalid settings:\n  domains .*\n  listen\.smtp .*$`, noData: data("d7")},
		{name: "serve port in use", args: serve(data("d8"), "--smtp", inUse.Addr().String()), code: 1,
			want:   `^tern: cannot listen on ` + regexp.QuoteMeta(inUse.Addr().String()) + ` for smtp \(MX, STARTTLS\): address already in use\n  another program \(or another tern serve\) listens there: ss -ltnp`,
			noData: data("d8")},
		{name: "serve missing config", args: []string{"serve", "--config", data("nope.toml")}, code: 1,
			want: `^tern: cannot read the configuration file: open \S+nope\.toml: no such file or directory$`},
		{name: "serve broken config", args: []string{"serve", "--config", broken}, code: 1,
			want: `^tern: configuration file \S+broken\.toml, line 2: `},
		{name: "serve config bad domain", args: []string{"serve", "--config", badDomain, "--data", data("d9")}, code: 1,
			want: `invalid setting: \S+bad-domain\.toml:\d+: domains \(--domain\) "bad_domain!": not a domain name: '_' may not appear`, noData: data("d9")},
		{name: "user add exists", args: []string{"user", "add", "--data", users, "--password-stdin", "bob@example.test"}, stdin: "pw\n", code: 1,
			want: `^tern: bob@example\.test already has an account \(tern user passwd bob@example\.test changes its password\)$`},
		{name: "user add no password", args: []string{"user", "add", "--data", users, "--password-stdin", "carol@example.test"}, code: 1,
			want: `^tern: no password on standard input \(--password-stdin reads its first line\)$`},
		{name: "user del unknown", args: []string{"user", "del", "--data", users, "nobody@example.test"}, code: 1,
			want: `^tern: there is no account nobody@example\.test \(tern user list shows them\)$`},
		{name: "user add bad address", args: []string{"user", "add", "--data", users, "--password-stdin", "bob@bad domain"}, stdin: "pw\n", code: 1,
			want: `^tern: not a mail address: "bob@bad domain": `},
		{name: "queue show unknown", args: []string{"queue", "show", "--data", users, "0000NOSUCHID"}, code: 1,
			want: `^tern: there is no message 0000NOSUCHID in the queue \(tern queue list shows them\)$`},
		{name: "status no server", args: []string{"status", "--data", users}, code: 1,
			want: `^tern: no server is running on \S+ \(its admin socket does not answer\)$`},
		{name: "reload no server", args: []string{"reload", "--data", users}, code: 1,
			want: `^tern: no server is running on \S+ \(its admin socket does not answer\)$`},
		{name: "send refused", args: []string{"send", "--server", refused, "--from", "a@example.test", "--to", "b@example.test"}, code: 3,
			want: `^\*\*\* Connection failed: dial tcp ` + regexp.QuoteMeta(refused) + `: connect: connection refused \(nothing listens there: is the server running, and on that port\?\)$`},
		{name: "auth bad base64", args: []string{"auth", "cram-md5", "bob", "pw", "!!!notbase64"}, code: 1,
			want: `^tern: CRAM-MD5 challenge: not base64: "!!!notbase64" \(a raw challenge starts with '<'\)$`},
		{name: "auth decode bad base64", args: []string{"auth", "decode", "!!!"}, code: 1,
			want: `^tern: not base64: "!!!"$`},
		{name: "auth bad NTLM challenge", args: []string{"auth", "ntlm", "bob", "pw", "", "AAAAAAAA"}, code: 1,
			want: `^tern: NTLM challenge: `},
		{name: "auth -PLUS", args: []string{"auth", "scram-sha-256-plus", "bob", "pw"}, code: 2,
			want: `^tern auth scram-sha-256-plus: the -PLUS mechanisms bind the exchange to the client's TLS connection`},
	}, nil)
}

// TestCLIDataPermissions: a data directory tern may not use is explained: which file, that
// permission is denied, who owns it, which user tern runs as, and what to run. Run as root (as
// CI does), tern runs as nobody against a directory of root's; otherwise against a directory
// of its own user that lets nobody in.
func TestCLIDataPermissions(t *testing.T) {
	t.Parallel()
	// The binary and the directories must be reachable by nobody: t.TempDir's are not.
	dir, err := os.MkdirTemp("", "tern-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tern")
	if err := testutil.CopyExecutable(bin, ternBin); err != nil {
		t.Fatal(err)
	}
	owned := filepath.Join(dir, "data")
	if err := os.Mkdir(owned, 0o700); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	hint := `chmod u\+rwX ` + regexp.QuoteMeta(owned)
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: testutil.NobodyID, Gid: testutil.NobodyID, Groups: []uint32{}}
		hint = regexp.QuoteMeta(owned) + ` belongs to root \(uid 0\) \(mode 0700\), but tern runs as \S+ \(uid 65534\): run tern as root, or give the data directory to \S+: chown -R \S+ ` + regexp.QuoteMeta(owned) + `$`
	} else {
		if err := os.Chmod(owned, 0); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(owned, 0o700) }() // else removing the TempDir fails, and says so
	}
	newDir := filepath.Join(owned, "sub")
	runCLICases(t, bin, []cliCase{
		{name: "serve", args: []string{"serve", "--data", owned, "--smtp", "127.0.0.1:0", "--submission", "", "--submissions", ""}, code: 1,
			want: `^tern: cannot lock the data directory: ` + regexp.QuoteMeta(filepath.Join(owned, "tern.lock")) + `: permission denied\n  ` + hint},
		{name: "user list", args: []string{"user", "list", "--data", owned}, code: 1,
			want: `^tern: cannot open the account database: ` + regexp.QuoteMeta(filepath.Join(owned, "accounts.db")) + `: permission denied\n  ` + hint},
		{name: "queue list", args: []string{"queue", "list", "--data", owned}, code: 1,
			want: `^tern: cannot ask the running server: ` + regexp.QuoteMeta(filepath.Join(owned, "admin.sock")) + `: permission denied\n  ` + hint},
		{name: "status", args: []string{"status", "--data", owned}, code: 1,
			want: `^tern: cannot ask the running server: \S+: permission denied\n  ` + hint},
		{name: "config check", args: []string{"config", "check", "--data", owned}, code: 1,
			want: `^cannot lock the data directory: ` + regexp.QuoteMeta(filepath.Join(owned, "tern.lock")) + `: permission denied\n  ` + hint},
		{name: "config check new data directory", args: []string{"config", "check", "--data", newDir}, code: 1,
			want: `cannot create the data directory: ` + regexp.QuoteMeta(newDir) + `: permission denied\n  `},
		{name: "serve new data directory", args: []string{"serve", "--data", newDir, "--smtp", "127.0.0.1:0", "--submission", "", "--submissions", ""}, code: 1,
			want: `^tern: cannot create the data directory: ` + regexp.QuoteMeta(newDir) + `: permission denied\n  `},
	}, cred)
}
