// Package admin is the control channel between `tern queue ...` (and `tern status`) and a running
// `tern serve`: a unix socket in the data directory (mode 0600, so only the server's user can use
// it) that carries one JSON request and one JSON reply per connection. The queue has one owner,
// the server; the command line asks it rather than touching the spool behind its back.
//
// Serve owns the goroutine of every connection: each request has a deadline, a panic in one is
// logged with its stack and answered with an error, and Serve returns only once every connection
// has ended (after a bounded wait at shutdown), so the server can close the queue after it.
package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/queue"
)

// Operations.
const (
	OpList    = "list"
	OpShow    = "show"
	OpFlush   = "flush"   // Arg: "" (all), a queue id, or "@domain"
	OpHold    = "hold"    // Arg: queue id
	OpRelease = "release" // Arg: queue id
	OpDelete  = "delete"  // Arg: queue id
	OpBounce  = "bounce"  // Arg: queue id
	OpStatus  = "status"  // the server's runtime figures (Reply.Status); only a running server has them
)

// Request is what the client sends.
type Request struct {
	Op  string `json:"op"`
	Arg string `json:"arg,omitempty"`
}

// Reply is what the server answers.
type Reply struct {
	Error   string       `json:"error,omitempty"`
	Items   []queue.Item `json:"items,omitempty"`
	Headers string       `json:"headers,omitempty"` // for show: the message's header section
	N       int          `json:"n,omitempty"`       // for flush: messages made due
	Status  *Status      `json:"status,omitempty"`  // for status
}

// Queue is what the server side needs of the queue.
type Queue interface {
	Items() []queue.Item
	Show(id string) (queue.Item, error)
	Body(id string) (io.ReadCloser, error)
	FlushID(id string) error
	FlushAll() int
	Flush(domain string, subdomains bool) int
	Hold(id string) error
	Release(id string) error
	Delete(ctx context.Context, id string) error
	Bounce(ctx context.Context, id string) error
	Len() int
}

// maxHeaders bounds what show returns of a message.
const maxHeaders = 64 << 10

// Listen opens the socket at path, replacing a stale one left by a crash (the data directory
// lock guarantees no other server owns it).
func Listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Handle runs one request against q; the command line uses it directly when no server runs.
func Handle(ctx context.Context, q Queue, req Request) Reply {
	var err error
	var rep Reply
	switch req.Op {
	case OpList:
		rep.Items = q.Items()
	case OpShow:
		var it queue.Item
		if it, err = q.Show(req.Arg); err == nil {
			rep.Items = []queue.Item{it}
			rep.Headers, err = headers(q, req.Arg)
		}
	case OpFlush:
		switch {
		case req.Arg == "":
			rep.N = q.FlushAll()
		case req.Arg[0] == '@':
			rep.N = q.Flush(req.Arg[1:], true)
		default:
			if err = q.FlushID(req.Arg); err == nil {
				rep.N = 1
			}
		}
	case OpHold:
		err = q.Hold(req.Arg)
	case OpRelease:
		err = q.Release(req.Arg)
	case OpDelete:
		err = q.Delete(ctx, req.Arg)
	case OpBounce:
		err = q.Bounce(ctx, req.Arg)
	case OpStatus:
		err = errors.New("the server is not running: only a running server has runtime figures")
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		rep.Error = replyError(req.Arg, err)
	}
	return rep
}

// replyError words a queue error for the administrator who typed the command about id: what
// is wrong and what to do, without the queue package's prefix.
func replyError(id string, err error) string {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return fmt.Sprintf("there is no message %s in the queue (tern queue list shows them)", id)
	case errors.Is(err, queue.ErrBusy):
		return fmt.Sprintf("%s is being delivered right now: try again in a moment", id)
	}
	return strings.TrimPrefix(err.Error(), "queue: ")
}

// headers reads the header section of a queued message.
func headers(q Queue, id string) (string, error) {
	rc, err := q.Body(id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	br := bufio.NewReader(io.LimitReader(rc, maxHeaders))
	var out []byte
	for {
		line, err := br.ReadBytes('\n')
		if len(line) <= 2 && (len(line) == 0 || line[0] == '\r' || line[0] == '\n') {
			break // the empty line ends the headers
		}
		out = append(out, line...)
		if err != nil {
			break
		}
	}
	return string(out), nil
}

// Call sends req to the server listening at path.
func Call(ctx context.Context, path string, req Request) (Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Reply{}, fmt.Errorf("admin: %w", err)
	}
	var rep Reply
	if err := json.NewDecoder(io.LimitReader(c, 64<<20)).Decode(&rep); err != nil {
		return Reply{}, fmt.Errorf("admin: reading the reply: %w", err)
	}
	return rep, nil
}
