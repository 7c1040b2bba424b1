package test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ternIn runs tern in the directory dir with the variables env (NAME=value) added, for what
// depends on the working directory (the default ./tern-data) or on TERN_DATA.
func ternIn(t *testing.T, dir string, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ternBin, args...)
	cmd.Dir = dir
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, "TERN_DATA=") }), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running tern: %v", err)
	}
	t.Logf("$ (cd %s; %s tern %s)\n[exit %d]\n[stdout]\n%s[stderr]\n%s", dir, strings.Join(env, " "), strings.Join(args, " "),
		cmd.ProcessState.ExitCode(), o.String(), e.String())
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestCLIFlagsAfterArguments: flags go before or after the arguments, as --flag value or
// --flag=value, and "--" ends them.
func TestCLIFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"user", "add", "bob@example.test", "--password-stdin", "--data", data},
		{"user", "add", "--data=" + data, "carol@example.test", "--domain=example.test", "--password-stdin"},
		{"user", "add", "--password-stdin", "--data", data, "--", "dave@example.test"},
	} {
		out, errOut, code := runTool(t, 30*time.Second, "pw\n", ternBin, args...)
		if code != 0 || !strings.HasPrefix(out, "added ") {
			t.Fatalf("tern %s: status %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	out, _, code := runTool(t, 30*time.Second, "", ternBin, "user", "list", "--data="+data)
	mustMatch(t, "user list", out, `^bob@example\.test +PLAIN `)
	mustMatch(t, "user list", out, `^dave@example\.test +PLAIN `)
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("user list: status %d\n%s", code, out)
	}
	// "--" makes "--x" an argument.
	out, _, code = runTool(t, 30*time.Second, "", ternBin, "auth", "encode", "--", "--x")
	if code != 0 || out != "LS14\n" {
		t.Fatalf("auth encode -- --x: status %d, %q", code, out)
	}
}

// TestCLIUsageErrors: a mistake gets one line on stderr, saying what was wrong and where the
// usage is, and exit status 2; nothing on stdout.
func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string // the whole of stderr
	}{
		{[]string{"frob"}, `tern: unknown command "frob"; see 'tern --help'`},
		{[]string{"help", "user", "frob"}, `tern help: unknown command "user frob"; see 'tern help --help'`},
		{[]string{"user"}, `tern user: missing command (add, del, disable, enable, list, passwd, show); see 'tern user --help'`},
		{[]string{"user", "frob"}, `tern user: unknown command "frob" (add, del, disable, enable, list, passwd, show); see 'tern user --help'`},
		{[]string{"user", "list", "--x"}, `tern user list: unknown flag: --x; see 'tern user list --help'`},
		{[]string{"user", "add", "--data", data}, `tern user add: wants ADDRESS, got 0 argument(s); see 'tern user add --help'`},
		{[]string{"user", "del", "a@example.test", "b@example.test", "--data", data}, `tern user del: wants ADDRESS, got 2 argument(s); see 'tern user del --help'`},
		{[]string{"user", "del", "--data"}, `tern user del: flag needs an argument: --data; see 'tern user del --help'`},
		{[]string{"serve", "now"}, `tern serve: takes no arguments, got "now"; see 'tern serve --help'`},
		{[]string{"serve", "--remote-port=x"}, `tern serve: invalid argument "x" for "--remote-port" flag: strconv.ParseInt: parsing "x": invalid syntax; see 'tern serve --help'`},
		{[]string{"status", "--json=maybe", "--data", data}, `tern status: invalid argument "maybe" for "--json" flag: strconv.ParseBool: parsing "maybe": invalid syntax; see 'tern status --help'`},
		{[]string{"config"}, `tern config: missing command (check, example, reference); see 'tern config --help'`},
		{[]string{"config", "example", "x"}, `tern config example: takes no arguments, got "x"; see 'tern config example --help'`},
		{[]string{"queue", "show", "--data", data}, `tern queue show: name the messages: queue ids, ALL, or a selection; see 'tern queue show --help'`},
		// Commands that use no data directory take no --data.
		{[]string{"version", "--data", data}, `tern version: unknown flag: --data; see 'tern version --help'`},
		{[]string{"config", "example", "--data", data}, `tern config example: unknown flag: --data; see 'tern config example --help'`},
		{[]string{"completion", "bash", "--data", data}, `tern completion bash: unknown flag: --data; see 'tern completion bash --help'`},
	} {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, tc.args...)
		if code != 2 || out != "" || errOut != tc.want+"\n" {
			t.Errorf("tern %s: status %d, stdout %q\nstderr %q\nwant   %q", strings.Join(tc.args, " "), code, out, errOut, tc.want+"\n")
		}
	}
}

// TestCLINoDataDirectory: only serve and user add make a data directory. Every other command
// that uses one, run where there is none, says which path it looked at and how to give
// another, exits 1 and makes nothing: with --data, with TERN_DATA, and with the default
// ./tern-data.
func TestCLINoDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	noDir := func(path string) string {
		return "tern: there is no data directory " + path + " (tern serve and tern user add make one): " +
			"give the right one with --data DIR, the TERN_DATA environment variable or the data setting of --config FILE\n"
	}
	commands := [][]string{
		{"user", "list"},
		{"user", "show", "bob@example.test"},
		{"user", "del", "bob@example.test"},
		{"user", "passwd", "bob@example.test", "--password-stdin"},
		{"queue", "list"},
		{"queue", "show", "0000NOSUCHID"},
		{"queue", "flush"},
		{"queue", "delete", "0000NOSUCHID"},
		{"status"},
		{"limits", "show"},
	}
	for _, how := range []struct {
		name string
		env  []string
		args []string
		path string
	}{
		{"--data", nil, []string{"--data", missing}, missing},
		{"TERN_DATA", []string{"TERN_DATA=" + missing}, nil, missing},
		{"default", nil, nil, filepath.Join(dir, "tern-data")},
	} {
		for _, c := range commands {
			out, errOut, code := ternIn(t, dir, how.env, "pw\n", append(append([]string{}, c...), how.args...)...)
			if code != 1 || out != "" || errOut != noDir(how.path) {
				t.Errorf("%s: tern %s: status %d, stdout %q\nstderr %q\nwant   %q", how.name, strings.Join(c, " "), code, out, errOut, noDir(how.path))
			}
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("the commands made %v in %s (%v)", entries, dir, err)
	}

	// A data directory without an account database: the account commands say so, and make none.
	if err := os.Mkdir(missing, 0o700); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := ternIn(t, dir, nil, "", "user", "list", "--data", missing)
	if code != 1 || errOut != "tern: there is no account database in "+missing+" (tern user add makes it)\n" {
		t.Errorf("user list without accounts.db: status %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(missing, "accounts.db")); !os.IsNotExist(err) {
		t.Errorf("user list made accounts.db (%v)", err)
	}
	// user add makes the directory, in the default place too.
	out, errOut, code := ternIn(t, dir, nil, "pw\n", "user", "add", "bob@example.test", "--password-stdin")
	if code != 0 || !strings.HasPrefix(out, "added bob@example.test ") {
		t.Fatalf("user add: status %d\n%s%s", code, out, errOut)
	}
	out, _, code = ternIn(t, dir, nil, "", "user", "show", "bob@example.test")
	if code != 0 || !strings.Contains(out, "mailbox:     tern-data/mail/example.test/bob\n") {
		t.Fatalf("user show in the default data directory: status %d\n%s", code, out)
	}
}

// helpCommand is one command of the tree, as tern help lists it.
type helpCommand struct {
	path  string // "user add"
	help  string // its --help
	flags []string
}

// walkHelp returns every command below path, from the "Available Commands:" of each --help.
func walkHelp(t *testing.T, path string) []helpCommand {
	t.Helper()
	args := append(strings.Fields(path), "--help")
	out, errOut, code := runTool(t, 30*time.Second, "", ternBin, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("tern %s: status %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	c := helpCommand{path: path, help: out}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([\w-]+)`).FindAllStringSubmatch(section(out, "Flags:"), -1) {
		c.flags = append(c.flags, m[1])
	}
	slices.Sort(c.flags)
	cmds := []helpCommand{c}
	for _, line := range strings.Split(section(out, "Available Commands:"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			cmds = append(cmds, walkHelp(t, strings.TrimSpace(path+" "+f[0]))...)
		}
	}
	return cmds
}

// section is the indented block under the heading of a --help, up to the next blank line.
func section(help, heading string) string {
	_, rest, ok := strings.Cut(help, "\n"+heading+"\n")
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(rest, "\n\n")
	return block
}

// TestCLIHelp walks the command tree: every command and subcommand answers -h, --help and tern
// help CMD alike, on stdout, with status 0; with its own usage line and only its own flags; and
// the commands of this file's making have examples.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	cmds := walkHelp(t, "")
	// The flags of each command, exactly: none a command does not use.
	data := []string{"config", "data", "help"}
	store := append([]string{"accounts"}, data...) // the commands on the account store
	acct := append([]string{"auth-mechanisms", "domain"}, store...)
	wantFlags := map[string][]string{
		"serve": append([]string{"admin", "hostname", "log-format", "log-level", "metrics", "relayhost", "remote-port", "resolver", "retry-schedule",
			"smtp", "submission", "submissions"}, acct...),
		"user add":     append([]string{"password-stdin"}, acct...),
		"user passwd":  append([]string{"password-stdin"}, acct...),
		"user del":     store,
		"user disable": store,
		"user enable":  store,
		"admin add":    append([]string{"password-stdin"}, store...),
		"admin passwd": append([]string{"password-stdin"}, store...),
		"admin del":    store,
		"admin list":   store,
		"user list":    append([]string{"auth-mechanisms"}, store...),
		"user show":    append([]string{"auth-mechanisms"}, store...),
		"status":       append([]string{"json"}, data...),
		"reload":       data,
		"limits show":  append([]string{"json"}, data...),
		"dkim keygen":  append([]string{"algorithm", "selector"}, store...),
		"dkim rotate":  append([]string{"activate", "algorithm", "selector"}, store...),
		"dkim list":    append([]string{"records"}, store...),
		"dns records": append([]string{"check", "dmarc-rua", "domain", "hostname", "ip", "mta-sts-mode", "mta-sts-policy",
			"resolver", "tls-rua"}, store...),
		"config example":   {"help"},
		"config reference": {"help"},
		"config check":     data,
		"spf check":        {"config", "from", "help", "helo", "ip", "resolver", "timeout"},
		"reports send":     append([]string{"now"}, store...),
		"reports list":     append([]string{"days"}, store...),
		"accounts copy":    append([]string{"from", "overwrite", "to"}, data...),
		"dmarc check":      {"config", "help", "resolver", "timeout"},
		"version":          {"help"},
		"bench": {"auth", "ca", "duration", "ehlo", "from", "help", "insecure", "json", "messages", "password", "password-stdin", "pipeline",
			"plot", "recipients", "reuse", "server", "sessions", "size", "starttls", "timeout", "tls", "to", "user"},
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[c.path] = true
		full := strings.TrimSpace("tern " + c.path)
		mustMatch(t, full+" --help", c.help, `^Usage:\n  `+regexp.QuoteMeta(full)+`\b`)
		mustNotMatch(t, full+" --help", c.help, `Global Flags:`)
		if !strings.Contains(c.help, "-h, --help") {
			t.Errorf("%s --help lists no -h, --help:\n%s", full, c.help)
		}
		for _, args := range [][]string{append(strings.Fields(c.path), "-h"), append([]string{"help"}, strings.Fields(c.path)...)} {
			out, errOut, code := runTool(t, 30*time.Second, "", ternBin, args...)
			if code != 0 || errOut != "" || out != c.help {
				t.Errorf("tern %s: status %d, stderr %q; not the same as %s --help:\n%s", strings.Join(args, " "), code, errOut, full, out)
			}
		}
		if want, ok := wantFlags[c.path]; ok {
			want = slices.Sorted(slices.Values(want))
			if !slices.Equal(c.flags, want) {
				t.Errorf("%s --help lists the flags %v, want %v", full, c.flags, want)
			}
		}
		if c.path != "" && !strings.Contains(c.path, "completion") {
			// Every command that uses no data directory takes no --data (tern send's --data is
			// its message file).
			usesData := slices.Contains([]string{"serve", "user", "admin", "alias", "queue", "status", "reload", "limits", "send", "dkim", "dns", "reports", "backup", "restore", "accounts"}, strings.Fields(c.path)[0]) ||
				c.path == "config check"
			if slices.Contains(c.flags, "data") != usesData && !slices.Contains([]string{"user", "admin", "alias", "queue", "limits", "dkim", "dns", "reports", "accounts"}, c.path) {
				t.Errorf("%s: --data listed %v, uses a data directory %v", full, slices.Contains(c.flags, "data"), usesData)
			}
		}
	}
	// The examples of the commands this command-line work restyled (auth, send and
	// queue are restyled in their own files).
	for _, path := range []string{"", "serve", "user", "user add", "user passwd", "user del", "user list", "user show",
		"status", "config", "config example", "version"} {
		for _, c := range cmds {
			if c.path == path && section(c.help, "Examples:") == "" {
				t.Errorf("tern %s --help has no examples:\n%s", path, c.help)
			}
		}
	}
	for _, path := range []string{"serve", "user add", "user show", "queue list", "status", "auth plain", "send", "bench",
		"config example", "version", "spf check", "dmarc check", "completion bash", "completion zsh", "completion fish"} {
		if !seen[path] {
			t.Errorf("tern %s is not in the help's command tree", path)
		}
	}
}

// TestCLICompletion: tern completion writes scripts bash, zsh and fish accept, and bash's and
// fish's complete commands and flags through the binary.
func TestCLICompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := func(shell, want string) string {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "completion", shell)
		if code != 0 || errOut != "" || !strings.Contains(out, want) {
			t.Fatalf("tern completion %s: status %d, stderr %q, no %q", shell, code, errOut, want)
		}
		f := filepath.Join(dir, "tern."+shell)
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	bashFile := script("bash", "complete -o default -F __start_tern tern")
	zshFile := script("zsh", "#compdef tern")
	fishFile := script("fish", "complete -c tern ")
	path := "PATH=" + filepath.Dir(ternBin) + string(os.PathListSeparator) + os.Getenv("PATH")

	bash := needTool(t, "bash")
	bashCompletion := "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		missingTool(t, "bash-completion", err)
	}
	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		sh := "source " + bashCompletion + "; source " + bashFile + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); " +
			"COMP_CWORD=" + strconv.Itoa(len(words)-1) + "; COMP_LINE='" + line + "'; COMP_POINT=${#COMP_LINE}; __start_tern; printf '%s\\n' \"${COMPREPLY[@]}\""
		out, errOut, code := runToolEnv(t, 30*time.Second, []string{path}, strings.NewReader(""), bash, "-c", sh)
		if code != 0 {
			t.Fatalf("bash completion of %q: status %d\n%s", line, code, errOut)
		}
		return strings.Fields(out)
	}
	if got := complete("tern user "); !slices.Equal(got, []string{"add", "del", "disable", "enable", "list", "passwd", "show"}) {
		t.Errorf("bash: tern user <TAB>: %q", got)
	}
	if got := complete("tern user add --pa"); !slices.Equal(got, []string{"--password-stdin"}) {
		t.Errorf("bash: tern user add --pa<TAB>: %q", got)
	}
	if got := complete("tern sta"); !slices.Equal(got, []string{"status"}) {
		t.Errorf("bash: tern sta<TAB>: %q", got)
	}

	zsh := needTool(t, "zsh")
	if _, errOut, code := runTool(t, 30*time.Second, "", zsh, "-n", zshFile); code != 0 {
		t.Errorf("zsh -n: status %d\n%s", code, errOut)
	}
	fish := needTool(t, "fish")
	out, errOut, code := runToolEnv(t, 30*time.Second, []string{path}, strings.NewReader(""), fish, "--no-config", "-c",
		"source "+fishFile+"; complete -C 'tern user a'")
	if code != 0 || !strings.HasPrefix(out, "add\tadd an account") {
		t.Errorf("fish: tern user a<TAB>: status %d, %q\n%s", code, out, errOut)
	}
}

// TestCLIVersion: tern version and tern --version print the version, the commit and the Go
// version: from make's -X flags, and from the build information of a plain go build.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	goLine := "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	// ternBin is a plain go build: its commit is the build information's, if it has one.
	info, errOut, code := runTool(t, 60*time.Second, "", needTool(t, "go"), "version", "-m", ternBin)
	if code != 0 {
		t.Fatalf("go version -m: %s", errOut)
	}
	commit := "unknown (built without VCS information)"
	if m := regexp.MustCompile(`(?m)^\s+build\s+vcs\.revision=(\w+)$`).FindStringSubmatch(info); m != nil {
		commit = m[1]
		if strings.Contains(info, "vcs.modified=true") {
			commit += " (modified)"
		}
	}
	want := "tern dev\ncommit: " + commit + "\n" + goLine
	for _, arg := range []string{"version", "--version"} {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, arg)
		if code != 0 || errOut != "" || out != want {
			t.Errorf("tern %s: status %d, stderr %q\n%s\nwant:\n%s", arg, code, errOut, out, want)
		}
	}

	// As make builds it, and with the build information a checkout gives (-buildvcs=auto
	// overrides a GOFLAGS=-buildvcs=false; a git worktree still gives none).
	bin := filepath.Join(t.TempDir(), "tern")
	_, errOut, code = runTool(t, 5*time.Minute, "", "go", "build", "-buildvcs=auto",
		"-ldflags", "-X main.version=v1.2.3-test -X main.commit=0123456789abcdef", "-o", bin, "github.com/tern-mail/tern/cmd/tern")
	if code != 0 {
		t.Fatalf("go build: %s", errOut)
	}
	info, _, _ = runTool(t, 60*time.Second, "", "go", "version", "-m", bin)
	commit = "0123456789abcdef"
	if m := regexp.MustCompile(`(?m)^\s+build\s+vcs\.revision=(\w+)$`).FindStringSubmatch(info); m != nil {
		commit = m[1] // what go build recorded wins over make's
		if strings.Contains(info, "vcs.modified=true") {
			commit += " (modified)"
		}
	}
	out, _, code := runTool(t, 30*time.Second, "", bin, "version")
	if want := "tern v1.2.3-test\ncommit: " + commit + "\n" + goLine; code != 0 || out != want {
		t.Errorf("tern version of a make build:\n%s\nwant:\n%s", out, want)
	}
}
