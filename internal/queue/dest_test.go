package queue

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// slowDomain is a fake destination whose deliveries block until released, counting how many
// run at once.
type slowDomain struct {
	release chan struct{}
	running atomic.Int32
	mu      sync.Mutex
	most    int32
}

func (s *slowDomain) answer(ctx context.Context, addr string, _ int) error {
	if !strings.HasSuffix(addr, "@slow.test") {
		return nil
	}
	n := s.running.Add(1)
	defer s.running.Add(-1)
	s.mu.Lock()
	s.most = max(s.most, n)
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return nil
}

// destinationOf is a Destination that names the domain of a message's first recipient, except
// local.test, which has no limit.
func destinationOf(env *envelope.Envelope) string {
	a := env.Rcpts[0].Addr
	if d := a[strings.IndexByte(a, '@')+1:]; d != "local.test" {
		return d
	}
	return ""
}

// TestDestinationConcurrency: messages for a destination that hangs get at most
// DestinationConcurrency workers; mail for elsewhere goes on meanwhile; a parked message can
// be held, released and deleted; when the destination answers again, everything goes.
func TestDestinationConcurrency(t *testing.T) {
	slow := &slowDomain{release: make(chan struct{})}
	fake := newFake(slow.answer)
	opts := testOpts(fake)
	opts.Workers, opts.DestinationConcurrency = 4, 2
	opts.Destination = destinationOf
	q := openQueue(t, t.TempDir(), opts)
	runQueue(t, q)

	var slowIDs []string
	for range 10 {
		slowIDs = append(slowIDs, commitMsg(t, q, newEnv("bob@slow.test"), []byte("Subject: s\r\n\r\nx\r\n")))
	}
	waitFor(t, "two deliveries to slow.test", func() bool { return slow.running.Load() == 2 })

	// The two other workers serve everyone else.
	var others []string
	for range 5 {
		others = append(others, commitMsg(t, q, newEnv("carol@local.test"), []byte("Subject: l\r\n\r\nx\r\n")))
		others = append(others, commitMsg(t, q, newEnv("dave@other.test"), []byte("Subject: o\r\n\r\nx\r\n")))
	}
	waitFor(t, "the other mail", func() bool {
		for _, id := range others {
			if fake.attempts(id, 0) == 0 {
				return false
			}
		}
		return true
	})

	// Parked messages: tern queue show says what they wait for; one is held, one deleted.
	held, deleted := slowIDs[8], slowIDs[9]
	waitFor(t, "the parked messages", func() bool { it, _ := q.Show(held); return it.WaitingFor != "" })
	if it, _ := q.Show(held); it.WaitingFor != "slow.test" || it.Busy || !it.Next.IsZero() {
		t.Errorf("parked message: %+v", it)
	}
	if err := q.Hold(held); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(context.Background(), deleted); err != nil {
		t.Fatal(err)
	}

	close(slow.release)
	waitFor(t, "slow.test's mail", func() bool { return q.Len() == 1 })
	if slow.most != 2 {
		t.Errorf("%d deliveries to slow.test at once, want at most 2", slow.most)
	}
	if n := fake.attempts(held, 0); n != 0 {
		t.Errorf("the held message was tried %d times", n)
	}
	if n := fake.attempts(deleted, 0); n != 0 {
		t.Errorf("the deleted message was tried %d times", n)
	}
	for _, id := range slowIDs[:8] {
		if n := fake.attempts(id, 0); n != 1 {
			t.Errorf("%s tried %d times, want once", id, n)
		}
	}
	if err := q.Release(held); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released message", func() bool { return q.Len() == 0 })
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.inflight) != 0 || len(q.parked) != 0 {
		t.Errorf("left over: inflight %v, parked %v", q.inflight, q.parked)
	}
}

// blockingBatch delivers at once, except to slow.test, which waits for release.
type blockingBatch struct {
	release chan struct{}
	mu      sync.Mutex
	done    []string
}

func (b *blockingBatch) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, _ delivery.Body) []delivery.Outcome {
	if strings.HasSuffix(env.Rcpts[rcpts[0]].Addr, "@slow.test") {
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, i := range rcpts {
		b.done = append(b.done, env.Rcpts[i].Addr)
	}
	return make([]delivery.Outcome, len(rcpts))
}

func (b *blockingBatch) delivered() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.done)
}

// TestDomainsInParallel: the recipients of one message in several domains are delivered
// domain by domain at the same time: one that hangs does not hold up the others.
func TestDomainsInParallel(t *testing.T) {
	b := &blockingBatch{release: make(chan struct{})}
	opts := batchOpts(nil)
	opts.Batch = b
	q := openQueue(t, t.TempDir(), opts)
	runQueue(t, q)
	commitMsg(t, q, newEnv("a@slow.test", "b@fast.test", "c@other.test"), []byte("Subject: p\r\n\r\nx\r\n"))
	waitFor(t, "the other domains", func() bool { return len(b.delivered()) == 2 })
	if got := b.delivered(); slices.Contains(got, "a@slow.test") {
		t.Fatalf("delivered %v before slow.test answered", got)
	}
	close(b.release)
	waitFor(t, "the message", func() bool { return q.Len() == 0 })
}
