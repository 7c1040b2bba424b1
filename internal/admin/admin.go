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
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// Operations. Those that act on messages name them with Request.IDs, or select them with
// Request.All and Request.Select (see Handle).
const (
	OpList    = "list"    // Reply.Items: the messages selected (all by default)
	OpShow    = "show"    // Reply.Items and Reply.Headers
	OpBody    = "body"    // Arg: a queue id; the whole message follows the reply (see CallBody)
	OpFlush   = "flush"   // no ids: every message; Arg "@domain": that domain and its subdomains
	OpHold    = "hold"    // Reply.Results
	OpRelease = "release" // Reply.Results
	OpDelete  = "delete"  // Reply.Results
	OpBounce  = "bounce"  // Reply.Results
	OpStatus  = "status"  // the server's runtime figures (Reply.Status); only a running server has them
	// OpReportsSend sends the DMARC and TLS reports due, today's so far included (tern reports
	// send --now; Reply.Reports); only a running server holds the counts of the last minute.
	OpReportsSend = "reports-send"
	// OpLimits lists the rate limit counters now (tern limits show; Reply.Limits); only a
	// running server holds them.
	OpLimits = "limits"
	// OpSnapshot links the queue's files at one instant under the data directory, for tern
	// backup to copy (Reply.Snapshot; queue.Snapshot); only a running server takes one (with
	// the server stopped, tern backup copies the queue under the data directory's lock).
	OpSnapshot = "snapshot"
	// OpReload reads the configuration again and applies it, as SIGHUP does (tern reload);
	// Reply.Error holds the problems of a configuration refused.
	OpReload = "reload"
)

// Request is what the client sends.
type Request struct {
	Op string `json:"op"`
	// Arg is OpBody's queue id, or OpFlush's "@domain"; for the other operations, a single
	// queue id as Request.IDs (what clients before IDs sent).
	Arg string `json:"arg,omitempty"`
	// IDs are the queue ids of the messages to act on (postsuper -d ID ...).
	IDs []string `json:"ids,omitempty"`
	// All acts on every message Select selects (postsuper -d ALL). Without IDs, a Select that
	// is not zero implies it.
	All bool `json:"all,omitempty"`
	// Select narrows the messages acted on; with IDs, a named message it does not select is
	// an error for that id.
	Select queue.Selection `json:"select,omitzero"`
}

// Reply is what the server answers.
type Reply struct {
	// Error is set when the request as a whole failed; errors of single messages are in Results.
	Error string       `json:"error,omitempty"`
	Items []queue.Item `json:"items,omitempty"`
	// Headers, for show, is the header section of each of Items, in the same order.
	Headers []string `json:"headers,omitempty"`
	// Results, for the operations that act on messages, is one per message named or selected.
	Results []Result `json:"results,omitempty"`
	N       int      `json:"n,omitempty"`      // messages acted on (for flush: made due)
	Status  *Status  `json:"status,omitempty"` // for status
	// Reports, for reports-send, are the reports sent, and the destinations skipped.
	Reports []accounts.SentReport `json:"reports,omitempty"`
	// Limits, for limits, are the counters in use, closest to their limit first.
	Limits []ratelimit.Usage `json:"limits,omitempty"`
	// Snapshot is OpSnapshot's answer.
	Snapshot *queue.Snapshot `json:"snapshot,omitempty"`
}

// Result is the outcome of an operation on one message.
type Result struct {
	ID    string `json:"id"`
	Error string `json:"error,omitempty"` // empty when done
}

// Queue is what the server side needs of the queue.
type Queue interface {
	Select(queue.Selection) []queue.Item
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
		_ = ln.Close() // the failed chmod is the error to report
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// headers reads the header section of a queued message.
func headers(q Queue, id string) (string, error) {
	rc, err := q.Body(id)
	if err != nil {
		return "", err
	}
	defer func() { _ = rc.Close() }() // a reader: closing it only unpins the message
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
	defer func() { _ = c.Close() }() // the reply is read (or failed): nothing left to report
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
