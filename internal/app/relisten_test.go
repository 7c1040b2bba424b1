package app

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestRelisten: a reload binds and serves a moved listener's new address and closes the old
// one; a listener unchanged keeps its socket; an address that cannot be bound is logged and the
// old socket stays.
func TestRelisten(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Submission: "127.0.0.1:0"}
	logs := &testutil.SyncBuffer{}
	s := &Server{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil))}
	if _, err := s.listen(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var served []*listener
	s.serveLn = func(l *listener) { served = append(served, l) }
	mx, sub := s.lns[0], s.lns[1]

	next := cfg
	next.Listen.SMTP = "127.0.0.1:0" // the same socket: kept, although the port was 0
	next.Listen.Submission = busy.Addr().String()
	s.relisten(next)
	if len(served) != 0 || len(s.lns) != 2 || s.lns[0] != mx || s.lns[1] != sub || sub.retired.Load() {
		t.Fatalf("after a failed bind: served %d, listeners %v", len(served), s.lns)
	}
	if !strings.Contains(logs.String(), "reload of a listener refused") {
		t.Errorf("log lacks the refused bind:\n%s", logs)
	}

	next.Listen.Submission = "127.0.0.2:0"
	s.relisten(next)
	if len(served) != 1 || len(s.lns) != 2 || s.lns[0] != mx || s.lns[1] != served[0] {
		t.Fatalf("after a move: served %d, listeners %v", len(served), s.lns)
	}
	if !sub.retired.Load() {
		t.Error("the moved listener's old socket is not retired")
	}
	if _, err := sub.ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the old socket accepts: %v", err)
	}
	if got := served[0].ln.Addr().String(); !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("the new socket is on %s", got)
	}

	// Renamed on the same address: the old socket holds the address, so it stays and serves.
	moved := s.lns[1]
	next.Listeners = []config.Listener{
		{Name: "mx", Address: "127.0.0.1:0", Role: config.RoleMX},
		{Name: "sub2", Address: moved.ln.Addr().String(), Role: config.RoleSubmission},
	}
	s.relisten(next)
	if len(served) != 2 || len(s.lns) != 2 || s.lns[0] != served[1] || s.lns[1] != moved || moved.retired.Load() || !mx.retired.Load() {
		t.Fatalf("after a rename: served %d, listeners %v, submission retired %v", len(served), s.lns, moved.retired.Load())
	}
}
