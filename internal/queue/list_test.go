package queue

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

func TestListEmpty(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }},
		{"empty directory", func(t *testing.T) string { return t.TempDir() }},
		{"new queue", func(t *testing.T) string {
			dir := t.TempDir()
			q, err := Open(dir, testOpts(newFake(nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			envs, err := List(tc.dir(t), nil)
			if err != nil || len(envs) != 0 {
				t.Errorf("List = %v, %v; want nothing and no error", envs, err)
			}
		})
	}
}

func TestListOrder(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, testOpts(newFake(nil)))
	var ids []string
	for i := range 5 {
		ids = append(ids, commitMsg(t, q, newEnv("a@example.test"), bodyFor(i, 10)))
	}
	envs, err := List(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range envs {
		got = append(got, e.ID)
	}
	if len(got) != len(ids) {
		t.Fatalf("List = %v, want %v", got, ids)
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("List = %v, want %v (oldest first)", got, ids)
		}
	}
}

// TestListWhileWriting lists a queue that is committing, delivering, rotating and compacting.
// Every listing must succeed and be a consistent view: messages known to be pending are always
// there, intact, and nothing appears that was never offered.
func TestListWhileWriting(t *testing.T) {
	dir := t.TempDir()
	fake := newFake(tempFail("pinned.test"))
	opts := testOpts(fake) // pinned messages stay deferred for an hour
	opts.SegmentSize = 8 << 10
	q := openQueue(t, dir, opts)
	pinned := make(map[string]*envelope.Envelope)
	for i := range 5 {
		env := newEnv("a@pinned.test", "b@fast.test")
		commitMsg(t, q, env, bodyFor(i, 300))
		pinned[env.ID] = env.Clone()
	}
	runQueue(t, q)

	var offered sync.Map // ids handed out, recorded before Commit
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // before the queue is closed, even on failure
	for s := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				w, err := q.NewMessage()
				if err != nil {
					t.Error(err)
					return
				}
				offered.Store(w.ID(), true)
				w.Write(bodyFor(i, 200+s*300))
				env := newEnv("x" + strconv.Itoa(s) + "@fast.test")
				if err := w.Commit(context.Background(), env); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			q.compact()
			time.Sleep(time.Millisecond)
		}
	})

	for i := range 200 {
		envs, err := List(dir, nil)
		if err != nil {
			t.Fatalf("listing %d: %v", i, err)
		}
		seen := make(map[string]bool)
		for _, e := range envs {
			if seen[e.ID] {
				t.Fatalf("listing %d has %s twice", i, e.ID)
			}
			seen[e.ID] = true
			if want := pinned[e.ID]; want != nil {
				if err := sameEnvelope(want, e); err != nil {
					t.Fatalf("listing %d: %v", i, err)
				}
				continue
			}
			if _, ok := offered.Load(e.ID); !ok {
				t.Fatalf("listing %d has %s, which was never offered", i, e.ID)
			}
		}
		for id := range pinned {
			if !seen[id] {
				t.Fatalf("listing %d (%d messages) misses pending message %s", i, len(envs), id)
			}
		}
	}
}
