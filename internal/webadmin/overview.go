package webadmin

import (
	"fmt"
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
	Graphs []graph   // with an Activity only
	Auth   []Series  // AUTH failures and blocks, with an Activity only
}

// graph is a Series drawn as 60 bars, one a minute, in a 120×40 SVG viewBox.
type graph struct {
	Series
	Bars []bar
}

type bar struct {
	X, Y, H int
	Title   string
}

// graphHeight is the height of a graph's viewBox.
const graphHeight = 40

func newGraph(s Series) graph {
	g := graph{Series: s}
	for i, n := range s.Minutes {
		if n == 0 {
			continue
		}
		h := max(1, n*graphHeight/s.Max)
		g.Bars = append(g.Bars, bar{X: 2 * i, Y: graphHeight - h, H: h,
			Title: fmt.Sprintf("%d %s, %d min ago", n, s.Name, 59-i)})
	}
	return g
}

// overview shows the server's figures now and over the last hour.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s session, _ string) {
	d := overviewData{Queue: h.opts.Queue.Len()}
	if h.opts.Status != nil {
		d.Status = h.opts.Status()
	}
	// The queue lists its messages oldest first.
	if items := h.opts.Queue.Select(queue.Selection{}); len(items) > 0 {
		d.Oldest = items[0].Envelope.Received
	}
	if a := h.opts.Activity; a != nil {
		series := a.LastHour()
		for _, s := range series[:EventAuthFailed] {
			d.Graphs = append(d.Graphs, newGraph(s))
		}
		d.Auth = series[EventAuthFailed:]
	}
	h.render(w, http.StatusOK, "overview", pageFor(s, "Overview", "overview", d))
}

// sessionsPage lists the SMTP sessions open now.
func (h *Handler) sessionsPage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	h.render(w, http.StatusOK, "sessions", pageFor(s, "Live sessions", "sessions", h.opts.Activity.Live()))
}

// logPage shows the recent log lines, newest first.
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	lines := h.opts.Activity.Lines()
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	h.render(w, http.StatusOK, "log", pageFor(s, "Recent log", "log", lines))
}
