package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NobodyID is the user and group id an unprivileged test runs as: nobody and nogroup on
// Debian.
const NobodyID = 65534

// Unprivileged is for a test that needs file permissions to apply, which they do not to root
// (a read-only directory, a file nobody may open). Unprivileged returns true when the test
// already runs as another user: the caller goes on. As root it runs this very test again, in
// a copy of the test binary, as uid and gid 65534 with no supplementary groups (what
// `setpriv --reuid=65534 --regid=65534 --clear-groups` does, done by the kernel on exec),
// with TMPDIR a directory of that user's; it fails the test unless that run passes, and
// returns false: the caller returns at once and does nothing as root.
//
// Call it first in the test (or subtest) function. Where root cannot start a process as
// another user (a container without that id), the test fails when CI is set and is skipped
// otherwise, saying why: it is never skipped silently.
func Unprivileged(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return true
	}
	dir, err := os.MkdirTemp("", "tern-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	}()
	bin := filepath.Join(dir, "test.bin")
	if err := CopyExecutable(bin, os.Args[0]); err != nil {
		t.Fatalf("copying the test binary: %v", err)
	}
	tmp := filepath.Join(dir, "tmp")
	for _, p := range []string{dir, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, NobodyID, NobodyID); err != nil {
		t.Fatal(err)
	}

	timeout := 5 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d)
	}
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.count=1", "-test.v", "-test.timeout=" + timeout.String()}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: NobodyID, Gid: NobodyID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		MissingPeer(t, fmt.Sprintf("root cannot run the test as uid %d: %v", NobodyID, err))
	}
	t.Logf("ran as uid %d:\n%s", NobodyID, out)
	switch {
	case err != nil:
		t.Fatalf("the test failed as uid %d: %v", NobodyID, err)
	case !regexp.MustCompile(`(?m)^\s*--- PASS: ` + regexp.QuoteMeta(t.Name()) + ` `).Match(out):
		t.Fatalf("the test did not pass as uid %d (skipped, or not run)", NobodyID)
	}
	return false
}

// runPattern is a -test.run pattern that selects the test called name and nothing else.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// CopyExecutable copies the program src to dst (which must not exist), mode 0755. The copy
// is made by cp, a process of its own: a file this process held open for writing would be
// inherited by every child that other tests fork meanwhile, and exec of dst would then fail
// with ETXTBSY ("text file busy") until they exec.
func CopyExecutable(dst, src string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("copying %s: %s exists", src, dst)
	}
	if out, err := exec.Command("cp", "--", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s %s: %v: %s", src, dst, err, out)
	}
	return os.Chmod(dst, 0o755)
}
