package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
	"golang.org/x/sys/unix"
)

// helperDirEnv names the queue directory for TestHelperCommitter when it runs as a child.
const helperDirEnv = "TERN_QUEUE_CRASH_HELPER_DIR"

// crashOpts are the options of both sides of the crash test: small segments and a small
// InlineMax, so that rotations and body files are part of what a crash interrupts.
func crashOpts() Options {
	return Options{InlineMax: 2048, SegmentSize: 64 << 10}
}

// crashBody is the body of message id: its content can be checked from the id alone.
func crashBody(id string) []byte {
	n := 100 + int(id[len(id)-1]-'0')%7*900 // some above InlineMax
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "%s:%d\r\n", id, b.Len())
	}
	return b.Bytes()
}

// TestHelperCommitter is not a test: it is the child process of TestCrash. It commits messages
// from 8 goroutines and prints each id once Commit returned nil, until it is killed.
func TestHelperCommitter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	q, err := Open(dir, crashOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	for range 8 {
		go func() {
			for {
				w, err := q.NewMessage()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				w.Write(crashBody(w.ID()))
				env := newEnv("a@example.test", "b@example.test")
				env.Size = int64(len(crashBody(w.ID())))
				if err := w.Commit(context.Background(), env); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, w.ID())
				if err := out.Flush(); err != nil {
					os.Exit(2) // the parent stopped reading: it has what it needs
				}
				mu.Unlock()
			}
		}()
	}
	// The parent kills us long before this; the deadline only stops an orphan.
	time.Sleep(30 * time.Second)
	os.Exit(3)
}

// TestCrash kills a committing process with SIGKILL and checks that every message whose Commit
// returned nil (whose 250 could have been sent) is in the queue afterwards, body intact.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	acked := make(map[string]bool)
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCommitter$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ids := make(chan string, 1024)
		go func() {
			defer close(ids)
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line cut by the kill was never complete: not acknowledged
				}
				ids <- strings.TrimSuffix(line, "\n")
			}
		}()
		// Read for a while once the child is committing, then kill it mid-flight.
		var kill <-chan time.Time
		start := time.After(waitTimeout)
	read:
		for {
			select {
			case id, ok := <-ids:
				if !ok {
					break read
				}
				acked[id] = true
				if kill == nil {
					kill = time.After(300 * time.Millisecond)
				}
			case <-kill:
				if err := unix.Kill(cmd.Process.Pid, unix.SIGKILL); err != nil {
					t.Fatal(err)
				}
				kill = nil
				for id := range ids { // what it printed before dying
					acked[id] = true
				}
				break read
			case <-start:
				cmd.Process.Kill()
				t.Fatalf("the child committed nothing; stderr:\n%s", stderr.String())
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Fatalf("child ended with %v, not by SIGKILL; stderr:\n%s", err, stderr.String())
		}

		var logs testutil.SyncBuffer
		opts := crashOpts()
		opts.Logger = debugLogger(&logs)
		q, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		missing := 0
		for id := range acked {
			q.mu.Lock()
			e := q.entries[id]
			q.mu.Unlock()
			if e == nil {
				missing++
				if missing < 10 {
					t.Errorf("round %d: message %s was acknowledged but is not in the queue", round, id)
				}
				continue
			}
			if got := readBody(t, q, id); !bytes.Equal(got, crashBody(id)) {
				t.Errorf("round %d: message %s has a damaged body", round, id)
			}
		}
		// Messages committed but not yet acknowledged may be there too, but whole.
		q.mu.Lock()
		var all []string
		for id := range q.entries {
			all = append(all, id)
		}
		q.mu.Unlock()
		for _, id := range all {
			if got := readBody(t, q, id); !bytes.Equal(got, crashBody(id)) {
				t.Errorf("round %d: unacknowledged message %s has a damaged body", round, id)
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged messages lost", round, missing, len(acked))
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("round %d: replay logged errors:\n%s", round, logs.String())
		}
		t.Logf("round %d: %d acknowledged, %d queued", round, len(acked), len(all))
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
