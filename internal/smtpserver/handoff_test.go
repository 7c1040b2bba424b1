package smtpserver

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

// checkedReader reads a handoff a few octets at a time and checks at each read that it holds
// no more than its bound and that the pool's budget is not overdrawn.
type checkedReader struct {
	t *testing.T
	h *handoff
	n int
}

func (r checkedReader) Read(p []byte) (int, error) {
	r.h.mu.Lock()
	held, free := len(r.h.held), r.h.pool.free.Load()
	r.h.mu.Unlock()
	if held > r.h.chunks || free < 0 {
		r.t.Errorf("handoff holds %d chunks (most %d), budget left %d", held, r.h.chunks, free)
	}
	return r.h.Read(p[:min(len(p), r.n)])
}

// What the writer writes, in lines as the session does and in one big write, the reader reads
// whole and in order, while two handoffs share a pool whose budget covers one extra chunk
// between them: neither holds past its bound, the budget is never overdrawn, and it is whole
// again at the end.
func TestHandoffCarriesAllWithinBounds(t *testing.T) {
	pool := newChunkPool(16, 16)
	var want []string
	for i := range 2 {
		want = append(want, strings.Repeat("line of the message "+string(rune('a'+i))+"\r\n", 40)+strings.Repeat("x", 500))
	}
	var wg sync.WaitGroup
	for _, msg := range want {
		h := newHandoff(pool, 64)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for line := range strings.Lines(msg[:len(msg)-500]) {
				if n, err := h.Write([]byte(line)); n != len(line) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
			}
			_, _ = h.Write([]byte(msg[len(msg)-500:])) // never fails
			h.close(io.EOF, false)
		}()
		go func() {
			defer wg.Done()
			got, err := io.ReadAll(checkedReader{t, h, 5})
			h.release()
			if err != nil || string(got) != msg {
				t.Errorf("read %d octets, %v; want %d", len(got), err, len(msg))
			}
		}()
	}
	wg.Wait()
	if free := pool.free.Load(); free != 16 {
		t.Errorf("budget left %d, want 16", free)
	}
}

// A reader that stops early (a verifier with its verdict) releases the handoff: writes past
// the bound return at once and are dropped. An aborted message ends the reader's read with the
// abort's error, even with data held.
func TestHandoffReleaseAndAbort(t *testing.T) {
	pool := newChunkPool(8, 64)
	h := newHandoff(pool, 16)
	if _, err := h.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if n, err := h.Read(p); n != 4 || err != nil || string(p) != "0123" {
		t.Fatalf("Read = %d %q, %v", n, p[:n], err)
	}
	h.release()
	if n, err := h.Write(bytes.Repeat([]byte("y"), 1000)); n != 1000 || err != nil {
		t.Fatalf("Write after release = %d, %v", n, err)
	}
	if free := pool.free.Load(); free != 64 || len(h.held) != 0 {
		t.Errorf("after release: budget %d, %d chunks held", free, len(h.held))
	}

	h = newHandoff(pool, 16)
	if _, err := h.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	h.close(errAborted, true)
	if n, err := h.Read(p); n != 0 || !errors.Is(err, errAborted) {
		t.Errorf("Read after abort = %d, %v", n, err)
	}
	if free := pool.free.Load(); free != 64 {
		t.Errorf("budget %d after abort", free)
	}
}
