package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/queue"
)

// ErrNoTarget is the error of an operation on messages that names none: deleting every
// message takes ALL, not an empty command line.
var ErrNoTarget = errors.New("name the messages: queue ids, ALL, or a selection (--from, --to, --domain, --held, --deferred)")

// Handle runs one request against q; the command line uses it directly when no server runs.
// An operation on messages runs on each one named or selected, even when some fail.
func Handle(ctx context.Context, q Queue, req Request) Reply {
	if err := req.Select.Check(); err != nil {
		return Reply{Error: strings.TrimPrefix(err.Error(), queue.ErrSelection.Error()+"\n")}
	}
	var rep Reply
	switch req.Op {
	case OpList:
		rep.Items = q.Select(req.Select)
	case OpShow:
		var (
			items          []queue.Item
			headerSections []string
		)
		rep = each(q, req, func(id string) error {
			it, err := q.Show(id)
			if err != nil {
				return err
			}
			h, err := headers(q, id)
			if err != nil {
				return err
			}
			items = append(items, it)
			headerSections = append(headerSections, h)
			return nil
		}, nil)
		rep.Items, rep.Headers = items, headerSections
	case OpFlush:
		rep = flush(q, req)
	case OpHold:
		rep = each(q, req, q.Hold, func(it queue.Item) bool { return !it.Envelope.Held })
	case OpRelease:
		rep = each(q, req, q.Release, func(it queue.Item) bool { return it.Envelope.Held })
	case OpDelete:
		rep = each(q, req, func(id string) error { return q.Delete(ctx, id) }, nil)
	case OpBounce:
		rep = each(q, req, func(id string) error { return q.Bounce(ctx, id) }, nil)
	case OpStatus:
		rep.Error = "the server is not running: only a running server has runtime figures"
	case OpReportsSend:
		rep.Error = "the server is not running: only a running server sends reports"
	case OpLimits:
		rep.Error = "the server is not running: only a running server counts rates"
	case OpSnapshot:
		rep.Error = "the server is not running: copy the queue under the data directory's lock"
	case OpReload:
		rep.Error = "the server is not running: nothing to reload"
	case OpBody:
		rep.Error = "the body is sent over the socket only (CallBody)"
	default:
		rep.Error = fmt.Sprintf("unknown operation %q", req.Op)
	}
	return rep
}

// target is a message an operation is to act on, or the reason it cannot.
type target struct {
	id  string
	err error
}

// targets resolves what req names (IDs, or Arg) or selects (All, Select). When it selects,
// worth (if not nil) leaves out the messages the operation would not change.
func targets(q Queue, req Request, worth func(queue.Item) bool) ([]target, error) {
	named := req.IDs
	if len(named) == 0 && req.Arg != "" {
		named = []string{req.Arg}
	}
	var ts []target
	switch {
	case len(named) > 0 && req.All:
		return nil, errors.New("give queue ids or ALL, not both")
	case len(named) > 0:
		seen := make(map[string]bool, len(named))
		for _, id := range named {
			if seen[id] {
				continue
			}
			seen[id] = true
			t := target{id: id}
			if !req.Select.IsZero() {
				if it, err := q.Show(id); err != nil {
					t.err = err
				} else if !req.Select.Match(it) {
					t.err = fmt.Errorf("%w: %s", errNotSelected, id)
				}
			}
			ts = append(ts, t)
		}
	case req.All || !req.Select.IsZero():
		for _, it := range q.Select(req.Select) {
			if worth == nil || worth(it) {
				ts = append(ts, target{id: it.Envelope.ID})
			}
		}
	default:
		return nil, ErrNoTarget
	}
	return ts, nil
}

// errNotSelected is the error of a message named by its id that the selection leaves out.
var errNotSelected = errors.New("the selection leaves out")

// each runs do on every target of req, and reports each outcome; N counts those done.
func each(q Queue, req Request, do func(id string) error, worth func(queue.Item) bool) Reply {
	ts, err := targets(q, req, worth)
	if err != nil {
		return Reply{Error: err.Error()}
	}
	rep := Reply{Results: make([]Result, 0, len(ts))}
	for _, t := range ts {
		if t.err == nil {
			t.err = do(t.id)
		}
		r := Result{ID: t.id}
		if t.err != nil {
			r.Error = ReplyError(t.id, t.err)
		} else {
			rep.N++
		}
		rep.Results = append(rep.Results, r)
	}
	return rep
}

// flush makes messages due now: every one (no ids, no selection), a domain's ("@domain"), or
// those named or selected. A selection leaves out the messages that are not deferred (held
// ones wait for release; due ones need nothing); a held message named by its id is an error.
func flush(q Queue, req Request) Reply {
	switch {
	case strings.HasPrefix(req.Arg, "@") && len(req.IDs) == 0 && !req.All && req.Select.IsZero():
		return Reply{N: q.Flush(req.Arg[1:], true)}
	case req.Arg == "" && len(req.IDs) == 0 && req.Select.IsZero(): // with All or without
		return Reply{N: q.FlushAll()}
	}
	return each(q, req, q.FlushID, queue.Item.Deferred)
}

// ReplyError words a queue error for the administrator who typed the command about id: what
// is wrong and what to do, without the queue package's prefix.
func ReplyError(id string, err error) string {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return fmt.Sprintf("there is no message %s in the queue (tern queue list shows them)", id)
	case errors.Is(err, queue.ErrBusy):
		return fmt.Sprintf("%s is being delivered right now: try again in a moment", id)
	case errors.Is(err, errNotSelected):
		return fmt.Sprintf("%s is queued, but not selected by the --from, --to, --domain, --held or --deferred given", id)
	}
	return strings.TrimPrefix(err.Error(), "queue: ")
}
