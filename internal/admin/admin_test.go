package admin

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// stuck fails every delivery temporarily, so messages stay queued.
type stuck struct{}

func (stuck) Deliver(context.Context, *envelope.Envelope, int, io.Reader) error {
	return &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}
}

func TestOverSocket(t *testing.T) {
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{Deliverer: stuck{}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	w, err := q.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	const msg = "Subject: queued\r\nFrom: a@b.example\r\n\r\nbody\r\n"
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background(), &envelope.Envelope{From: "a@b.example", Received: time.Now(),
		Rcpts: []envelope.Recipient{{Addr: "x@remote.example"}}}); err != nil {
		t.Fatal(err)
	}
	id := w.ID()

	sock := filepath.Join(dir, "admin.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // a stale file from a crash is replaced
		t.Fatal(err)
	}
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, Options{Queue: q, Sessions: func() int { return 7 }}) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	call := func(op, arg string) Reply {
		t.Helper()
		rep, err := Call(context.Background(), sock, Request{Op: op, Arg: arg})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := call(OpList, ""); len(rep.Items) != 1 || rep.Items[0].Envelope.ID != id {
		t.Fatalf("list: %+v", rep)
	}
	if rep := call(OpShow, id); rep.Error != "" || len(rep.Headers) != 1 || rep.Headers[0] != "Subject: queued\r\nFrom: a@b.example\r\n" {
		t.Errorf("show: %+v", rep)
	}
	if rep := call(OpHold, id); rep.Error != "" || rep.N != 1 {
		t.Fatalf("hold: %+v", rep)
	}
	if rep := call(OpShow, id); !rep.Items[0].Envelope.Held {
		t.Error("not held")
	}
	if rep := call(OpFlush, id); rep.N != 0 || len(rep.Results) != 1 || !strings.Contains(rep.Results[0].Error, "held") {
		t.Errorf("flush of a held message: %+v", rep)
	}
	if rep := call(OpRelease, id); rep.Error != "" || rep.N != 1 {
		t.Fatalf("release: %+v", rep)
	}
	if rep := call(OpFlush, "@remote.example"); rep.Error != "" {
		t.Errorf("flush @domain: %+v", rep)
	}
	var body strings.Builder
	if err := CallBody(context.Background(), sock, id, &body); err != nil || body.String() != msg {
		t.Errorf("body: %q, %v", body.String(), err)
	}
	if rep := call(OpDelete, id); rep.Error != "" || rep.N != 1 {
		t.Fatalf("delete: %+v", rep)
	}
	if err := CallBody(context.Background(), sock, id, &body); err == nil || !strings.Contains(err.Error(), "there is no message "+id+" in the queue") {
		t.Errorf("body after delete: %v", err)
	}
	if rep := call(OpShow, id); rep.N != 0 || len(rep.Results) != 1 || !strings.Contains(rep.Results[0].Error, "there is no message "+id+" in the queue") {
		t.Errorf("show after delete: %+v", rep)
	}
	many := make([]string, 20000) // xargs tern queue show < ids
	for i := range many {
		many[i] = fmt.Sprintf("%016X", i)
	}
	if rep, err := Call(context.Background(), sock, Request{Op: OpShow, IDs: many}); err != nil || rep.Error != "" || len(rep.Results) != len(many) || rep.N != 0 {
		t.Errorf("show of %d unknown ids: %v, %q, %d results", len(many), err, rep.Error, len(rep.Results))
	}
	if rep := call("explode", ""); !strings.Contains(rep.Error, "unknown operation") {
		t.Errorf("unknown op: %+v", rep)
	}
	rep := call(OpStatus, "")
	if st := rep.Status; rep.Error != "" || st == nil || st.Sessions != 7 || st.Queue != 0 ||
		st.Goroutines < 2 || st.OpenFiles < 3 || st.RSS < 1<<20 {
		t.Errorf("status: %+v %+v", rep, rep.Status)
	}
}

// TestStatusWithoutServer: the figures belong to a running server; the queue alone has none.
func TestStatusWithoutServer(t *testing.T) {
	if rep := Handle(context.Background(), &fakeQueue{}, Request{Op: OpStatus}); !strings.Contains(rep.Error, "not running") || rep.Status != nil {
		t.Errorf("status without a server: %+v", rep)
	}
}
