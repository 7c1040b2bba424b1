package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/testutil"
)

// fakeQueue is a Queue whose Select and Delete can be made to panic or to block.
type fakeQueue struct {
	Queue            // the methods a test does not set panic (nil interface)
	items     func() // run by Select
	deleteRun chan struct{}
	// deleteWait, if set, is what Delete waits for; otherwise it waits for its context.
	deleteWait chan struct{}
}

func (f *fakeQueue) Select(queue.Selection) []queue.Item {
	if f.items != nil {
		f.items()
	}
	return nil
}

func (f *fakeQueue) Delete(ctx context.Context, id string) error {
	close(f.deleteRun)
	if f.deleteWait != nil {
		<-f.deleteWait
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeQueue) Len() int { return 0 }

// startServe runs Serve on a fresh socket and returns its path, its log, and a function that
// stops it and returns what Serve returned.
func startServe(t *testing.T, q Queue, drain time.Duration) (sock string, logs *testutil.SyncBuffer, stop func() error) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "admin.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	logs = &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, Options{Queue: q, Drain: drain,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}()
	var err2 error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err2 = <-served
		}
		return err2
	}
	t.Cleanup(func() {
		if stopped {
			return // the test stopped it and looked at what Serve returned
		}
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock, logs, stop
}

// waitLog waits until the log holds want.
func waitLog(t *testing.T, logs *testutil.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A panic in a request is logged with its stack and answered with an error; the server goes on.
func TestServePanic(t *testing.T) {
	q := &fakeQueue{items: func() { panic("boom") }}
	sock, logs, stop := startServe(t, q, time.Second)
	rep, err := Call(context.Background(), sock, Request{Op: OpList})
	if err != nil || !strings.Contains(rep.Error, "internal error") {
		t.Fatalf("reply to a panicking request: %+v %v", rep, err)
	}
	q.items = nil
	if rep, err := Call(context.Background(), sock, Request{Op: OpList}); err != nil || rep.Error != "" {
		t.Fatalf("the next request: %+v %v", rep, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	log := logs.String()
	for _, want := range []string{`msg="admin request panic" op=list`, `panic=boom`, `serve_test.go`} {
		if !strings.Contains(log, want) {
			t.Errorf("no %q in the log:\n%s", want, log)
		}
	}
}

// A reply that cannot be written (the client has gone) is logged.
func TestServeReplyNotSent(t *testing.T) {
	unblock := make(chan struct{})
	entered := make(chan struct{})
	q := &fakeQueue{items: func() { close(entered); <-unblock }}
	sock, logs, _ := startServe(t, q, time.Second)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(c).Encode(Request{Op: OpList}); err != nil {
		t.Fatal(err)
	}
	<-entered
	c.Close()
	close(unblock)
	waitLog(t, logs, `msg="admin reply not sent" op=list`)
}

// A request that is not JSON gets an error reply, and the log says so.
func TestServeBadRequest(t *testing.T) {
	sock, logs, _ := startServe(t, &fakeQueue{}, time.Second)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "list please\n"); err != nil {
		t.Fatal(err)
	}
	var rep Reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil || !strings.HasPrefix(rep.Error, "bad request: ") {
		t.Fatalf("reply: %+v %v", rep, err)
	}
	waitLog(t, logs, `msg="admin request unreadable"`)
}

// At shutdown Serve waits for a request in progress, then cancels it, and returns only once its
// goroutine has ended.
func TestServeDrainCancels(t *testing.T) {
	q := &fakeQueue{deleteRun: make(chan struct{})}
	sock, logs, stop := startServe(t, q, 50*time.Millisecond)
	replied := make(chan bool, 1)
	go func() {
		rep, err := Call(context.Background(), sock, Request{Op: OpDelete, Arg: "X"})
		replied <- err == nil && rep.Error == "" && rep.N == 1
	}()
	<-q.deleteRun
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	waitLog(t, logs, `admin requests still running at shutdown`)
	// The request's context was cancelled and its connection closed: the client hears no
	// success, and nothing answers any more.
	if <-replied {
		t.Error("the cancelled request was reported done")
	}
	if _, err := Call(context.Background(), sock, Request{Op: OpList}); err == nil {
		t.Error("the socket still answers after Serve returned")
	}
}

// A request that ignores its context does not hold Serve forever: it returns with an error
// naming it.
func TestServeDrainBound(t *testing.T) {
	q := &fakeQueue{deleteRun: make(chan struct{}), deleteWait: make(chan struct{})}
	defer close(q.deleteWait)
	sock, _, stop := startServe(t, q, 20*time.Millisecond)
	go func() { _, _ = Call(context.Background(), sock, Request{Op: OpDelete, Arg: "X"}) }() // cut off by the drain
	<-q.deleteRun
	if err := stop(); err == nil || !strings.Contains(err.Error(), "1 request(s) still running") {
		t.Fatalf("Serve: %v", err)
	}
}

// TestServeListenerFails: Serve returns the listener's error when it was not asked to stop.
func TestServeListenerFails(t *testing.T) {
	ln, err := Listen(filepath.Join(t.TempDir(), "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := Serve(context.Background(), ln, Options{Queue: &fakeQueue{}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed listener: %v", err)
	}
}

// TestProcFigures reads open files and resident size from a /proc/<pid>-like directory.
func TestProcFigures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "fd"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"0", "1", "2", "7"} {
		write(filepath.Join("fd", n), "")
	}
	write("statm", "5000 300 120 200 0 900 0\n")
	if n, err := openFiles(dir); n != 4 || err != nil {
		t.Errorf("openFiles = %d, %v; want 4", n, err)
	}
	if n, err := residentSize(dir); n != 300*int64(os.Getpagesize()) || err != nil {
		t.Errorf("residentSize = %d, %v; want 300 pages", n, err)
	}
	write("statm", "5000\n")
	if _, err := residentSize(dir); err == nil {
		t.Error("a statm without a resident field was read")
	}
	st := status(Options{Queue: &fakeQueue{}, Proc: filepath.Join(dir, "missing"), Logger: slog.New(slog.DiscardHandler)})
	if st.OpenFiles != -1 || st.RSS != -1 {
		t.Errorf("figures of a missing /proc: %+v, want -1", st)
	}
}

// TestRequestAttrs: the log line of a request names what it acted on, boundedly, and counts
// what was done and what failed.
func TestRequestAttrs(t *testing.T) {
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fmt.Sprintf("ID%02d", i)
	}
	for _, tc := range []struct {
		req  Request
		rep  Reply
		want string
	}{
		{Request{Op: OpList}, Reply{}, `[op list arg  err ]`},
		{Request{Op: OpHold, IDs: ids[:2]}, Reply{N: 1, Results: []Result{{ID: "ID00"}, {ID: "ID01", Error: "no"}}},
			`[op hold arg ID00,ID01 done 1 err 1 of 2 failed]`},
		{Request{Op: OpDelete, IDs: ids}, Reply{Results: []Result{}},
			`[op delete arg ID00,ID01,ID02,ID03,ID04,ID05,ID06,ID07,ID08,ID09,... (12 ids) done 0 err ]`},
		{Request{Op: OpDelete, All: true, Select: queue.Selection{Held: true}}, Reply{Error: "bad"},
			`[op delete arg ALL select {From: To: Domain: Held:true Deferred:false} err bad]`},
	} {
		if got := fmt.Sprintf("%+v", requestAttrs(tc.req, tc.rep)); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.req, got, tc.want)
		}
	}
}
