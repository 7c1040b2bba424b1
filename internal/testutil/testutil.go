// Package testutil holds helpers shared by the tests of several packages. Only tests import it.
package testutil

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that one goroutine may write (a logger, a child process's output)
// while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// MissingPeer stops a test whose real peer (a program scripts/test-deps.sh installs) is not
// there: a failure when CI is set, where a missing peer must never pass unnoticed, and a skip
// on a developer's machine. msg says what is missing and how to get it.
func MissingPeer(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	t.Skip(msg)
}
