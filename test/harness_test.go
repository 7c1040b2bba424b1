// Package test holds tern's integration tests: they build the real binary once, start it as a
// separate process on loopback ports, and talk to it with real SMTP clients nobody here wrote
// (netcat, swaks, curl, msmtp, Python's smtplib, Go's net/smtp) and with raw-socket dialogues
// for what no client does by itself. Every process a test starts is stopped by the test, by its
// PID, also when the test fails.
//
// A missing tool fails the test when the CI environment variable is set and skips it (with the
// reason) otherwise; scripts/test-deps.sh installs them all.
package test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// ternBin is the tern binary TestMain builds for the whole package.
var ternBin string

// Names every test instance uses.
const (
	testDomain   = "example.test"
	testHostname = "mx.example.test"
)

// queuedRE matches the reply to a message the server has made durable.
const queuedRE = `250 2\.0\.0 Ok: queued as [0-9A-F]{10,}`

func TestMain(m *testing.M) {
	flag.Parse()
	// Most of these tests wait on the server (timeouts, retries, a crash and recovery), not on
	// the CPU, and each runs its own tern: let more of them wait at once than there are cores,
	// unless -parallel was given explicitly.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", fmt.Sprint(max(8, 4*runtime.GOMAXPROCS(0)))); err != nil {
			panic(err) // the flag is the testing package's own: it cannot refuse a number
		}
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tern-itest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ternBin = filepath.Join(dir, "tern")
	build := exec.Command("go", "build", "-o", ternBin, "github.com/tern-mail/tern/cmd/tern")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "test: building tern:", err)
		return 1
	}
	return m.Run()
}

// ternOpts configures startTern.
type ternOpts struct {
	// Config is the body of a TOML configuration file (for small limits); empty: no file.
	Config string
	// SMTPListen is the MX listener's address. Default: 127.0.0.1:0.
	SMTPListen string
	// ServeArgs are added to the `tern serve` command line (e.g. --auth-mechanisms all).
	ServeArgs []string
	// NoStart makes startTern prepare the data directory and config without starting the
	// server (a peer that is down at first); Start starts it.
	NoStart bool
	// Env is added to the server's environment (NAME=value), e.g. SSL_CERT_FILE for roots
	// that trust a test's HTTPS server.
	Env []string
	// Domain is the first --domain (where a bare login is taken). Default: testDomain.
	Domain string
	// DomainsInConfig gives no --domain: Config's domains are in force, and a reload of the
	// file changes them.
	DomainsInConfig bool
	// Named: Config has [[listener]] tables; no --smtp, --submission or --submissions is given
	// and the addresses are in Listeners, by name.
	Named bool
}

// Tern is one running `tern serve` process.
type Tern struct {
	t          *testing.T
	opts       ternOpts
	Data       string // data directory, kept across Restart
	configPath string

	// Listener addresses (host:port), as the server printed them.
	SMTP, Submission, Submissions string
	// Listeners are every listener's address by name (ternOpts.Named).
	Listeners map[string]string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error
	stderr  *testutil.SyncBuffer // every run's stderr, for failure reports
}

// lineWriter sends each complete line written to it on a channel (dropping lines nobody waits
// for), so the test can read the listener addresses as the server prints them.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	ch  chan string
	all *testutil.SyncBuffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.all.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		select {
		case w.ch <- line:
		default:
		}
	}
}

// startTern starts `tern serve` on fresh loopback ports with a fresh data directory. The
// process is killed (by PID) when the test ends, and its log is shown if the test failed.
func startTern(t *testing.T, opts ternOpts) *Tern {
	t.Helper()
	// Not t.TempDir: the data directory of a failed test is kept for a post-mortem.
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	data, err := os.MkdirTemp("", "tern-itest-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if opts.SMTPListen == "" {
		opts.SMTPListen = "127.0.0.1:0"
	}
	tn := &Tern{t: t, opts: opts, Data: data, stderr: &testutil.SyncBuffer{}}
	if opts.Config != "" {
		tn.configPath = filepath.Join(data, "tern.toml")
		if err := os.WriteFile(tn.configPath, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		tn.stopQuietly()
		if t.Failed() {
			t.Logf("tern log (stderr and stdout of every run):\n%s", tn.stderr.String())
			t.Logf("keeping the data directory %s", data)
			return
		}
		os.RemoveAll(data)
	})
	if !opts.NoStart {
		tn.start()
	}
	return tn
}

// noResolver is a DNS server address on loopback where nothing answers.
const noResolver = "127.0.0.1:9"

// start runs the server on tn.Data and waits until it has printed every listener address.
func (tn *Tern) start() {
	t := tn.t
	t.Helper()
	args := []string{"serve",
		"--data", tn.Data,
		"--hostname", testHostname,
		// Tests never ask the system's DNS: a resolver on a loopback port where nothing listens
		// makes every remote domain a temporary failure (mail waits in the queue). A test that
		// delivers remotely passes its own --resolver (later flags win).
		"--resolver", noResolver,
	}
	if !tn.opts.DomainsInConfig {
		args = append(args, "--domain", cmp.Or(tn.opts.Domain, testDomain))
	}
	if !tn.opts.Named {
		args = append(args, "--smtp", tn.opts.SMTPListen, "--submission", "127.0.0.1:0", "--submissions", "127.0.0.1:0")
	}
	if tn.configPath != "" {
		args = append(args, "--config", tn.configPath)
	}
	args = append(args, tn.opts.ServeArgs...)
	cmd := exec.Command(ternBin, args...)
	if len(tn.opts.Env) > 0 {
		cmd.Env = append(os.Environ(), tn.opts.Env...)
	}
	lines := make(chan string, 16)
	fmt.Fprintf(tn.stderr, "---- %s %s\n", time.Now().Format("15:04:05.000"), strings.Join(args, " "))
	cmd.Stdout = &lineWriter{ch: lines, all: tn.stderr}
	cmd.Stderr = tn.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting tern: %v", err)
	}
	done := make(chan struct{})
	tn.mu.Lock()
	tn.cmd, tn.done, tn.waitErr = cmd, done, nil
	tn.mu.Unlock()
	go func() {
		err := cmd.Wait()
		tn.mu.Lock()
		tn.waitErr = err
		tn.mu.Unlock()
		close(done)
	}()

	listenRE := regexp.MustCompile(`^tern: (\S+) \(.*\) listening on (\S+)$`)
	tn.SMTP, tn.Submission, tn.Submissions = "", "", ""
	tn.Listeners = map[string]string{}
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line := <-lines:
			if m := listenRE.FindStringSubmatch(line); m != nil {
				tn.Listeners[m[1]] = m[2]
				switch m[1] {
				case "smtp":
					tn.SMTP = m[2]
				case "submission":
					tn.Submission = m[2]
				case "submissions":
					tn.Submissions = m[2]
				}
				continue
			}
			if strings.HasPrefix(line, "tern: data directory ") {
				if !tn.opts.Named && (tn.SMTP == "" || tn.Submission == "" || tn.Submissions == "") {
					t.Fatalf("tern printed the data directory before all three listeners: %q %q %q",
						tn.SMTP, tn.Submission, tn.Submissions)
				}
				return
			}
		case <-done:
			t.Fatalf("tern exited during start-up: %v", tn.exitErr())
		case <-timeout:
			t.Fatalf("tern did not print its listeners within 15s")
		}
	}
}

func (tn *Tern) exitErr() error {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.waitErr
}

// PID is the running server's process id.
func (tn *Tern) PID() int { return tn.cmd.Process.Pid }

// Signal sends sig to the server's process.
func (tn *Tern) Signal(sig os.Signal) {
	tn.t.Helper()
	if err := tn.cmd.Process.Signal(sig); err != nil {
		tn.t.Fatalf("signal %v to tern (pid %d): %v", sig, tn.PID(), err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code; ok is false on
// timeout.
func (tn *Tern) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-tn.done:
		return tn.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Stop asks the server to shut down (SIGTERM) and fails the test unless it exits with status 0
// in time; it is then killed.
func (tn *Tern) Stop() {
	tn.t.Helper()
	tn.Signal(syscall.SIGTERM)
	code, ok := tn.Wait(15 * time.Second) // the server grants sessions 10s
	if !ok {
		tn.Kill()
		tn.t.Fatalf("tern did not exit within 15s of SIGTERM; killed it")
	}
	if code != 0 {
		tn.t.Fatalf("tern exited with status %d after SIGTERM: %v", code, tn.exitErr())
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
func (tn *Tern) Kill() {
	tn.t.Helper()
	tn.cmd.Process.Kill()
	if _, ok := tn.Wait(10 * time.Second); !ok {
		tn.t.Fatalf("tern (pid %d) still running 10s after SIGKILL", tn.PID())
	}
}

// Restart stops the server (gracefully) and starts it again on the same data directory; the
// listener addresses change.
func (tn *Tern) Restart() {
	tn.t.Helper()
	if !tn.exited() {
		tn.Stop()
	}
	tn.start()
}

// Start starts the server again after Kill or Stop.
func (tn *Tern) Start() {
	tn.t.Helper()
	if !tn.exited() {
		tn.t.Fatal("Start: tern is still running")
	}
	tn.start()
}

func (tn *Tern) exited() bool {
	tn.mu.Lock()
	done := tn.done
	tn.mu.Unlock()
	if done == nil {
		return true // never started (NoStart)
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// stopQuietly is the cleanup: SIGTERM, a short wait, then SIGKILL; never fails the test.
func (tn *Tern) stopQuietly() {
	tn.mu.Lock()
	cmd, done := tn.cmd, tn.done
	tn.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(3 * time.Second):
	}
	cmd.Process.Kill()
	<-done
}

// Log returns everything the server wrote so far (all runs).
func (tn *Tern) Log() string { return tn.stderr.String() }

// ternCmd runs a tern subcommand (not serve) against this data directory and returns its
// output and exit status: "tern <cmd...> --data D [--domain example.test] [--config F] <rest...>"
// (--domain for user add and passwd, the commands that take it).
func (tn *Tern) ternCmd(stdin string, cmd []string, rest ...string) (stdout, stderr string, code int) {
	tn.t.Helper()
	full := append([]string{}, cmd...)
	full = append(full, "--data", tn.Data)
	if len(cmd) == 2 && cmd[0] == "user" && (cmd[1] == "add" || cmd[1] == "passwd") {
		full = append(full, "--domain", testDomain)
	}
	if tn.configPath != "" {
		full = append(full, "--config", tn.configPath)
	}
	full = append(full, rest...)
	return runTool(tn.t, 30*time.Second, stdin, ternBin, full...)
}

// AddUser creates an account with `tern user add --password-stdin`, storing the secrets of
// the default mechanisms (or of those the config file names).
func (tn *Tern) AddUser(addr, password string) {
	tn.t.Helper()
	tn.AddUserArgs(addr, password)
}

// AddUserArgs is AddUser with more flags for `tern user add` (e.g. --auth-mechanisms all).
// It returns what the command printed.
func (tn *Tern) AddUserArgs(addr, password string, args ...string) string {
	tn.t.Helper()
	rest := append(append([]string{}, args...), "--password-stdin", addr)
	out, errOut, code := tn.ternCmd(password+"\n", []string{"user", "add"}, rest...)
	if code != 0 {
		tn.t.Fatalf("tern user add %s: status %d\nstdout: %s\nstderr: %s", addr, code, out, errOut)
	}
	return out
}

// AddUsers creates many accounts, a few at a time (the account store waits for its lock).
func (tn *Tern) AddUsers(password string, addrs ...string) {
	tn.t.Helper()
	errs := make([]error, len(addrs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ternBin, "user", "add", "--data", tn.Data, "--domain", testDomain, "--password-stdin", addr)
			cmd.Stdin = strings.NewReader(password + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("tern user add %s: %v\n%s", addr, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tn.t.Fatal(err)
	}
}

// QueueList returns the output of `tern queue list`.
func (tn *Tern) QueueList() string {
	tn.t.Helper()
	out, errOut, code := tn.ternCmd("", []string{"queue", "list"})
	if code != 0 {
		tn.t.Fatalf("tern queue list: status %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	return out
}

// WaitQueueEmpty waits until `tern queue list` says the queue is empty.
func (tn *Tern) WaitQueueEmpty(timeout time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := tn.QueueList()
		if strings.TrimSpace(out) == "Mail queue is empty" {
			return
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("queue not empty after %v:\n%s", timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MaildirNew is the new/ directory of addr's Maildir.
func (tn *Tern) MaildirNew(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	return filepath.Join(tn.Data, "mail", strings.ToLower(addr[at+1:]), strings.ToLower(addr[:at]), "Maildir", "new")
}

// Maildir returns the contents of the messages in addr's Maildir new/, oldest first (by name).
func (tn *Tern) Maildir(addr string) []string {
	tn.t.Helper()
	return readMessages(tn.t, tn.MaildirNew(addr))
}

// readMessages returns the contents of the files in dir (a Maildir's new/), oldest first (by
// name); none when dir does not exist.
func readMessages(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var msgs []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, string(b))
	}
	return msgs
}

// WaitMaildir waits until addr's Maildir holds at least n messages and returns them all.
func (tn *Tern) WaitMaildir(addr string, n int, timeout time.Duration) []string {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := tn.Maildir(addr)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("%s: %d message(s) in %s after %v, want %d\nqueue:\n%s",
				addr, len(msgs), tn.MaildirNew(addr), timeout, n, tn.QueueList())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitMessage waits until a message containing token is in addr's Maildir and returns it.
func (tn *Tern) WaitMessage(addr, token string, timeout time.Duration) string {
	tn.t.Helper()
	return tn.WaitMessageFunc(addr, fmt.Sprintf("%q", token), func(m string) bool { return strings.Contains(m, token) }, timeout)
}

// WaitMessageFunc waits until a message in addr's Maildir satisfies match (what describes,
// for the failure), and returns it.
func (tn *Tern) WaitMessageFunc(addr, what string, match func(string) bool, timeout time.Duration) string {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range tn.Maildir(addr) {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("no message with %s in %s after %v\nqueue:\n%s", what, tn.MaildirNew(addr), timeout, tn.QueueList())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ExpectNoMail checks that addr's Maildir holds want messages once the queue is empty. The
// queue delivers asynchronously, but a message the server accepted is in the queue before the
// client gets its 250, and leaves it only after its delivery (and the reports it calls for):
// called after the replies that matter, ExpectNoMail sees every message they could have let
// in, without waiting for a time that would only make that likely.
func (tn *Tern) ExpectNoMail(addr string, want int) {
	tn.t.Helper()
	tn.WaitQueueEmpty(10 * time.Second)
	if msgs := tn.Maildir(addr); len(msgs) != want {
		tn.t.Fatalf("%s has %d message(s), want %d:\n%s", addr, len(msgs), want, strings.Join(msgs, "\n----\n"))
	}
}

// needTool returns the path of an external program, or fails (CI set) or skips the test.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, name, err)
	}
	return p
}

// missingTool fails the test when CI is set and skips it otherwise, saying what to install.
func missingTool(t testing.TB, what string, err error) {
	t.Helper()
	testutil.MissingPeer(t, fmt.Sprintf("%s is not available (%v); install it with scripts/test-deps.sh", what, err))
}

// runTool runs a program with stdin, bounded by timeout (after which it is killed by PID), and
// returns its output and exit status (-1 if it did not exit normally). Everything is logged.
func runTool(t testing.TB, timeout time.Duration, stdin string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runToolIn(t, timeout, strings.NewReader(stdin), name, args...)
}

// runToolIn is runTool with any standard input (an *os.File is handed over as it is, so the
// program reads the file itself, as `prog < file` would).
func runToolIn(t testing.TB, timeout time.Duration, stdin io.Reader, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runToolEnv(t, timeout, nil, stdin, name, args...)
}

// runToolEnv is runToolIn with variables (NAME=value) added to the environment.
func runToolEnv(t testing.TB, timeout time.Duration, env []string, stdin io.Reader, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	code = -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", name, err)
	}
	if ctx.Err() != nil {
		t.Errorf("%s %s: killed after %v", filepath.Base(name), strings.Join(args, " "), timeout)
	}
	// env[:len(env):len(env)]: the append must not write into a caller's spare capacity (a slice
	// shared by parallel subtests).
	t.Logf("$ %s%s %s\n[exit %d]\n[stdout]\n%s[stderr]\n%s", strings.Join(append(env[:len(env):len(env)], ""), " "), filepath.Base(name), strings.Join(args, " "), code, o.String(), e.String())
	return o.String(), e.String(), code
}

// writeFile writes content to a new file in the test's temp dir and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustMatch fails unless s matches the regular expression re (multi-line mode).
func mustMatch(t testing.TB, what, s, re string) []string {
	t.Helper()
	m := regexp.MustCompile("(?m)" + re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s: no match for %q in:\n%s", what, re, s)
	}
	return m
}

// mustNotMatch fails if s matches re (multi-line mode).
func mustNotMatch(t testing.TB, what, s, re string) {
	t.Helper()
	if loc := regexp.MustCompile("(?m)" + re).FindStringIndex(s); loc != nil {
		t.Fatalf("%s: unexpected match for %q (%q) in:\n%s", what, re, s[loc[0]:loc[1]], s)
	}
}

// header returns the first header field called name in a delivered message (with folded
// continuation lines joined by "\n"), or "".
func header(msg, name string) string {
	sc := bufio.NewScanner(strings.NewReader(msg))
	sc.Buffer(nil, 1<<20)
	var out []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if in {
			if line[0] == ' ' || line[0] == '\t' {
				out = append(out, line)
				continue
			}
			break
		}
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			in = true
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// body returns what follows the header of a delivered message.
func body(msg string) string {
	if _, b, ok := strings.Cut(msg, "\n\n"); ok {
		return b
	}
	return ""
}
