package webadmin

import (
	"net/http"
	"time"

	"github.com/tern-mail/tern/internal/queue"
)

// Status is what the overview shows of the running server besides the queue.
type Status struct {
	// Sessions is the number of SMTP sessions open now.
	Sessions int
}

// overviewData is the overview page's.
type overviewData struct {
	Status
	Queue  int
	Oldest time.Time // when the oldest queued message came; zero with none
}

// overview shows the server's figures now.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s session, _ string) {
	d := overviewData{Queue: h.opts.Queue.Len()}
	if h.opts.Status != nil {
		d.Status = h.opts.Status()
	}
	for _, it := range h.opts.Queue.Select(queue.Selection{}) {
		if d.Oldest.IsZero() || it.Envelope.Received.Before(d.Oldest) {
			d.Oldest = it.Envelope.Received
		}
	}
	h.render(w, http.StatusOK, "overview", pageFor(s, "Overview", "overview", d))
}
