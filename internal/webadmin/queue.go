package webadmin

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// maxShownBody bounds the part of a message the details page shows.
const maxShownBody = 256 << 10

// maxListed bounds the messages the queue page lists: a queue of a hundred thousand would make
// a page no browser shows. The actions "on every message selected" still reach them all.
const maxListed = 1000

// queueData is the queue page's.
type queueData struct {
	Select   queue.Selection
	State    string // the state filter as the form has it
	Items    []queueRow
	Selected int // messages the filters select; more than Items past maxListed
	Total    int // messages in the queue, whatever the selection
	Back     string
}

// queueRow is a message as the list shows it.
type queueRow struct {
	queue.Item
	State   string
	Pending []string
}

// selection reads the filters from the query or form.
func selection(v url.Values) queue.Selection {
	return queue.Selection{
		From:     strings.TrimSpace(v.Get("from")),
		To:       strings.TrimSpace(v.Get("to")),
		Domain:   strings.TrimSpace(v.Get("domain")),
		Held:     v.Get("state") == "held",
		Deferred: v.Get("state") == "deferred",
	}
}

// state words what a message waits for.
func state(it queue.Item) string {
	switch {
	case it.Envelope.Held:
		return "held"
	case it.Busy:
		return "delivering"
	case it.WaitingFor != "":
		return "waiting for " + it.WaitingFor
	case it.Deferred():
		return "deferred"
	}
	return "due"
}

// pending returns the recipients the message still waits for.
func pending(it queue.Item) []string {
	var out []string
	for _, r := range it.Envelope.Rcpts {
		if r.Status == envelope.Pending {
			out = append(out, r.Addr)
		}
	}
	return out
}

// queuePage lists the messages the filters select.
func (h *Handler) queuePage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	sel := selection(r.URL.Query())
	rep := admin.Handle(r.Context(), h.opts.Queue, admin.Request{Op: admin.OpList, Select: sel})
	d := queueData{Select: sel, State: r.URL.Query().Get("state"), Selected: len(rep.Items), Total: h.opts.Queue.Len(),
		Back: "/queue?" + r.URL.RawQuery}
	for _, it := range rep.Items[:min(len(rep.Items), maxListed)] {
		d.Items = append(d.Items, queueRow{Item: it, State: state(it), Pending: pending(it)})
	}
	p := pageFor(s, "Queue", "queue", d)
	p.Error = rep.Error
	h.render(w, http.StatusOK, "queue", p)
}

// queueActions are what the queue page's buttons do, by the form's action.
var queueActions = map[string]string{
	"flush":   admin.OpFlush,
	"hold":    admin.OpHold,
	"release": admin.OpRelease,
	"delete":  admin.OpDelete,
	"bounce":  admin.OpBounce,
}

// queueAction runs an action on the messages ticked, as tern queue does, then shows the queue
// again with what was done.
func (h *Handler) queueAction(w http.ResponseWriter, r *http.Request, s session, tok string) {
	op, ok := queueActions[r.PostFormValue("action")]
	ids := r.PostForm["id"]
	req := admin.Request{Op: op, IDs: ids}
	// "Every message the filters select", as tern queue ACTION ALL --from ... does.
	if r.PostFormValue("all") == "1" {
		req = admin.Request{Op: op, All: true, Select: selection(r.PostForm)}
		ids = []string{"ALL"}
	}
	back := "/queue"
	// Back to the page the form was on: only one of the queue's own pages.
	if b := r.PostFormValue("back"); strings.HasPrefix(b, "/queue?") || strings.HasPrefix(b, "/queue/message?") {
		back = b
	}
	switch {
	case !ok:
		h.sessions.addFlash(tok, "Unknown action.")
	case len(ids) == 0:
		h.sessions.addFlash(tok, "Tick the messages to "+r.PostFormValue("action")+" first.")
	default:
		rep := admin.Handle(r.Context(), h.opts.Queue, req)
		if req.All {
			h.log.Info("webadmin: queue "+op, "admin", s.admin, "remote", clientIP(r), "select", fmt.Sprintf("%+v", req.Select), "done", rep.N)
			h.sessions.addFlash(tok, fmt.Sprintf("%s: %d done of the messages selected.", op, rep.N))
		} else {
			h.log.Info("webadmin: queue "+op, "admin", s.admin, "remote", clientIP(r), "msgid", ids, "done", rep.N)
			h.sessions.addFlash(tok, fmt.Sprintf("%s: %d of %d done.", op, rep.N, len(ids)))
		}
		if rep.Error != "" {
			h.sessions.addFlash(tok, rep.Error)
		}
		for _, res := range rep.Results {
			if res.Error != "" {
				h.log.Warn("webadmin: queue "+op+" failed", "admin", s.admin, "remote", clientIP(r), "msgid", res.ID, "err", res.Error)
				h.sessions.addFlash(tok, res.Error)
			}
		}
		if op == admin.OpDelete || op == admin.OpBounce {
			back = "/queue" // the message is gone: its details page would be empty
		}
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// messageData is the details page's.
type messageData struct {
	queue.Item
	State     string
	Body      string
	Truncated bool
}

// messagePage shows a message: its envelope, recipients and the start of its text.
func (h *Handler) messagePage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	id := r.URL.Query().Get("id")
	it, err := h.opts.Queue.Show(id)
	if err != nil {
		p := pageFor(s, "Message", "queue", nil)
		p.Error = admin.ReplyError(id, err)
		h.render(w, http.StatusNotFound, "error", p)
		return
	}
	d := messageData{Item: it, State: state(it)}
	if rc, err := h.opts.Queue.Body(id); err != nil {
		d.Body = "(the message text cannot be read: " + admin.ReplyError(id, err) + ")"
	} else {
		b, err := io.ReadAll(io.LimitReader(bufio.NewReader(rc), maxShownBody+1))
		_ = rc.Close() // a reader: closing it only unpins the message
		if err != nil {
			d.Body = "(reading the message text failed: " + err.Error() + ")"
		} else {
			d.Truncated = len(b) > maxShownBody
			d.Body = strings.ToValidUTF8(string(b[:min(len(b), maxShownBody)]), "\uFFFD")
		}
	}
	h.log.Info("webadmin: queue show", "admin", s.admin, "remote", clientIP(r), "msgid", id)
	h.render(w, http.StatusOK, "message", pageFor(s, "Message "+id, "queue", d))
}
