package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
)

// lenQueue is an admin.Queue with only a length: all tern status asks of it.
type lenQueue struct {
	admin.Queue
	n int
}

func (q lenQueue) Len() int { return q.n }

// TestStatusCommand: tern status prints the running server's figures, as text or JSON, and says
// plainly when no server answers.
func TestStatusCommand(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	var out bytes.Buffer
	err := StatusCommand(context.Background(), cfg, false, &out)
	if err == nil || !strings.Contains(err.Error(), "no server is running on "+cfg.Data) {
		t.Fatalf("without a server: %v", err)
	}

	ln, err := admin.Listen(adminPath(cfg.Data))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- admin.Serve(ctx, ln, admin.Options{Queue: lenQueue{n: 1}, Sessions: func() int { return 3 }})
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	if err := StatusCommand(context.Background(), cfg, false, &out); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{"sessions:    3\n", "queue:       1 message\n", "goroutines:  ", "open files:  ", "rss:         "} {
		if !strings.Contains(out.String(), re) {
			t.Errorf("no %q in:\n%s", re, out.String())
		}
	}
	out.Reset()
	if err := StatusCommand(context.Background(), cfg, true, &out); err != nil {
		t.Fatal(err)
	}
	var st admin.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Sessions != 3 || st.Queue != 1 || st.Goroutines == 0 || st.RSS <= 0 {
		t.Errorf("JSON %q: %+v %v", out.String(), st, err)
	}
}
