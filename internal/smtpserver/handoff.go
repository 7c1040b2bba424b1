package smtpserver

import (
	"io"
	"sync"
	"sync/atomic"
)

// The handoff of a message to its DKIM verifier. The verifier reads the header section, then
// looks the signers' keys up in DNS before it reads the body (it must know the key's hash
// algorithm first). Streaming the message to it through a pipe made every write of the session
// wait for that lookup: the session stopped reading the client for as long as DNS took (up to
// the resolver's timeout), with the client's data piling up in the socket buffers.
//
// A handoff is a bounded buffer between the two instead: the session copies each line into it
// and goes on reading, and the verifier takes what is there when it is ready. It grows in
// chunks from a pool that the server's sessions share, up to handoffMax octets per message and
// handoffBudget octets for the whole server beyond each message's first chunk (1,000 sessions
// receiving big messages while DNS hangs hold at most 1,000 chunks plus the budget, ~96 MiB,
// not 1,000 messages).
//
// Past the bound, the session waits for the verifier to take a chunk. That is the old stall,
// but only for what did not fit: a lookup slower than the client's sending of a whole MiB, or a
// server whose budget is spent, and it lasts at most what is left of the lookup (the resolver's
// timeout, the session's context), once per message. The other way out, letting the verifier
// read the rest back from the queue file once the lookup answers, was not taken: the queue file
// is not what the client sent (tern's Received field on top, forged Authentication-Results
// fields removed, Date and Message-ID maybe added, which DKIM must not see), the spool has no
// reader for a message it has not committed, and a big message would be read from disk a second
// time, with its hashing moved after the end of data, into the wait for the reply.
const (
	handoffChunk  = 32 << 10 // octets per chunk: a few reads of the verifier, little waste
	handoffMax    = 1 << 20  // octets a message may have waiting for its verifier
	handoffBudget = 64 << 20 // octets all messages of a server may hold past their first chunk
)

// chunkPool hands out the handoff chunks of one server, and keeps the count of octets that its
// handoffs hold past their first chunk.
type chunkPool struct {
	size int
	pool sync.Pool    // *[]byte, each of capacity size
	free atomic.Int64 // budget left, in octets
}

func newChunkPool(size int, budget int64) *chunkPool {
	p := &chunkPool{size: size}
	p.pool.New = func() any { b := make([]byte, 0, size); return &b }
	p.free.Store(budget)
	return p
}

// get returns an empty chunk, or nil when a chunk past a message's first (extra) finds the
// budget spent.
func (p *chunkPool) get(extra bool) *[]byte {
	for extra {
		free := p.free.Load()
		if free < int64(p.size) {
			return nil
		}
		if p.free.CompareAndSwap(free, free-int64(p.size)) {
			break
		}
	}
	c := p.pool.Get().(*[]byte)
	*c = (*c)[:0]
	return c
}

// put takes a chunk back; extra is what get was told.
func (p *chunkPool) put(c *[]byte, extra bool) {
	if extra {
		p.free.Add(int64(p.size))
	}
	p.pool.Put(c)
}

// handoff carries one message from the session (Write, close) to its verifier (Read, release).
// Write never fails and waits only past the bound; Read waits for data and returns the close's
// error (io.EOF at the end) once it has all the data.
type handoff struct {
	pool   *chunkPool
	chunks int // most chunks held at once

	mu   sync.Mutex
	cond sync.Cond // on mu: data or the end for the reader, room or release for the writer
	// held is the data not yet read, oldest first; each chunk's length is how much of it is
	// written. off is how much of held[0] is read.
	held []*[]byte
	off  int
	err  error // set by close: what Read returns once held is empty
	gone bool  // the reader released the handoff: writes are dropped
}

func newHandoff(pool *chunkPool, limit int) *handoff {
	h := &handoff{pool: pool, chunks: max(limit/pool.size, 1)}
	h.cond.L = &h.mu
	return h
}

// Write copies p in, waiting while the handoff holds its most and the reader is still there.
func (h *handoff) Write(p []byte) (int, error) {
	n := len(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(p) > 0 && !h.gone && h.err == nil {
		if k := len(h.held); k > 0 {
			if c := h.held[k-1]; len(*c) < cap(*c) {
				m := copy((*c)[len(*c):cap(*c)], p)
				*c = (*c)[:len(*c)+m]
				p = p[m:]
				continue
			}
		}
		if len(h.held) < h.chunks {
			if c := h.pool.get(len(h.held) > 0); c != nil {
				h.held = append(h.held, c)
				continue
			}
		}
		h.cond.Broadcast() // the reader may be waiting for what this Write copied so far
		h.cond.Wait()
	}
	h.cond.Broadcast()
	return n, nil
}

// Read reads what the session wrote.
func (h *handoff) Read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.held) == 0 || h.off == len(*h.held[0]) {
		if h.err != nil {
			return 0, h.err
		}
		h.cond.Wait()
	}
	c := h.held[0]
	n := copy(p, (*c)[h.off:])
	h.off += n
	if h.off == len(*c) {
		if len(h.held) == 1 {
			*c, h.off = (*c)[:0], 0 // the writer fills it again
		} else {
			h.drop()
		}
		h.cond.Broadcast() // room for a waiting writer
	}
	return n, nil
}

// drop returns held[0] to the pool.
func (h *handoff) drop() {
	k := len(h.held)
	h.pool.put(h.held[0], k > 1)
	h.held[0] = nil
	h.held = h.held[1:]
	h.off = 0
}

// close ends the writing: the reader gets err after the data held, or at once, with the data
// dropped, when abandon is set (an aborted message).
func (h *handoff) close(err error, abandon bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = err
	}
	if abandon {
		h.free()
	}
	h.cond.Broadcast()
}

// release is the reader's end: what is held goes back to the pool, and later writes are
// dropped.
func (h *handoff) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	h.free()
	h.cond.Broadcast()
}

func (h *handoff) free() {
	for len(h.held) > 0 {
		h.drop()
	}
}

var _ io.ReadWriter = (*handoff)(nil)
