package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
)

// testConfig is a server on a loopback port chosen by the system, with its data in a new
// directory.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Data = filepath.Join(t.TempDir(), "data")
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0"}
	return cfg
}

// TestBuildClose: a server built and never run releases its data directory and listeners on
// Close, so that the same config builds again (as a reload will).
func TestBuildClose(t *testing.T) {
	cfg := testConfig(t)
	log := slog.New(slog.DiscardHandler)
	s, err := Build(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, log); err == nil || !strings.Contains(err.Error(), "in use by another tern serve") {
		t.Errorf("second Build while the first holds the data directory: %v", err)
	}
	addr := s.lns[0].ln.Addr().String()
	s.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the listener is still bound after Close: %v", err)
	}
	ln.Close()
	s, err = Build(cfg, log)
	if err != nil {
		t.Fatalf("Build after Close: %v", err)
	}
	s.Close()
}

// TestBuildFailsBeforeWriting: an address in use is found before the data directory is made.
func TestBuildFailsBeforeWriting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.Listen.Submission = "127.0.0.1:0"
	cfg.Listen.SMTP = busy.Addr().String()
	if _, err := Build(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Build listened on an address in use")
	}
	if _, err := os.Stat(cfg.Data); !os.IsNotExist(err) {
		t.Errorf("the data directory was made: %v", err)
	}
}

// TestRun: Run serves until its context is done, then stops and releases everything.
func TestRun(t *testing.T) {
	cfg := testConfig(t)
	log := slog.New(slog.DiscardHandler)
	s, err := Build(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.lns[0].ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, io.Discard) }()
	// The listener is bound by Build: the connection waits for Run's accept loop.
	greeting := make([]byte, 4)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "220 " {
		t.Errorf("greeting %q, %v", greeting, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	s, err = Build(cfg, log)
	if err != nil {
		t.Fatalf("Build after Run: %v", err)
	}
	s.Close()
}
