package webadmin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Activity follows the server through its log: the events of the last hour counted per minute
// (the overview's graphs), the SMTP sessions open now, and the recent log lines. It reads the
// transaction lines the server writes anyway (one per connection, AUTH, refusal, queued
// message and delivery attempt: STYLE §6), so no package has to report to it. Handler puts
// it in front of the server's log handler; it sees every record at info level and above,
// whatever log.level is, and keeps the lines that the log writes.
type Activity struct {
	now func() time.Time

	mu      sync.Mutex
	minutes [60]minuteCounts // by Unix minute mod 60
	live    map[string]*LiveSession
	lines   []keptLine // the latest maxLines records, oldest first from next
	next    int

	// The records kept are formatted when the log page asks for them, not as they are logged:
	// a line costs the server a copy of its record, not a second formatting.
	fmtMu  sync.Mutex
	fmtBuf bytes.Buffer
}

// keptLine is a record kept, with the text handler (its WithAttrs and groups) that formats it.
type keptLine struct {
	h slog.Handler
	r slog.Record
}

// Kinds of events counted; the overview draws one graph per kind.
const (
	EventAccepted    = iota // a message queued ("queued")
	EventRejected           // a refusal of MAIL, RCPT or a message after its data
	EventDelivered          // a recipient delivered ("delivered")
	EventBounced            // a recipient failed for good ("delivery failed")
	EventAuthFailed         // a failed SMTP AUTH ("auth failed")
	EventAuthBlocked        // a client or an account blocked ("auth block started")
	numEvents
)

// eventNames are the kinds' words on the overview.
var eventNames = [numEvents]string{"accepted", "rejected", "delivered", "bounced", "AUTH failures", "AUTH blocks"}

type minuteCounts struct {
	minute int64 // the Unix minute counted, to tell a stale slot from this hour's
	n      [numEvents]int
}

// Bounds on what Activity keeps.
const (
	maxLines = 200
	maxLive  = 10000 // sessions are bounded by limits.connections; this only guards memory
)

// LiveSession is an SMTP session open now, as its log lines tell it.
type LiveSession struct {
	Conn, Remote, Listener string
	Since                  time.Time
	State                  string // the last thing it did: connect, EHLO, TLS, AUTH, MAIL, RCPT, queued, ...
	TLS                    string // the TLS version and cipher once established
	User                   string // the account it logged in as
}

// NewActivity returns an Activity on the clock now (nil: time.Now).
func NewActivity(now func() time.Time) *Activity {
	if now == nil {
		now = time.Now
	}
	return &Activity{now: now, live: make(map[string]*LiveSession)}
}

// Handler returns next, with a watch on every record.
func (a *Activity) Handler(next slog.Handler) slog.Handler {
	return &activityHandler{a: a, next: next, text: slog.NewTextHandler(&a.fmtBuf, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

// activityHandler passes records to next, and counts them and keeps their text for Activity.
type activityHandler struct {
	a     *Activity
	next  slog.Handler
	text  slog.Handler // formats the lines kept
	attrs []slog.Attr  // those of WithAttrs (conn, remote, listener of a session)
	group bool         // a group was opened: its attributes are not the session's
}

func (h *activityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *activityHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.group {
		h.a.observe(r, h.attrs)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	h.a.keep(keptLine{h: h.text, r: frozen(r)})
	return h.next.Handle(ctx, r)
}

// frozen is a copy of r whose values are fixed now: an error, or a pointer to something that
// changes, is worded as it is now, not when (and in whichever goroutine) the log page asks.
func frozen(r slog.Record) slog.Record {
	c := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindAny {
			switch x := v.Any().(type) {
			case error:
				v = slog.StringValue(x.Error())
			default:
				v = slog.StringValue(fmt.Sprintf("%+v", x))
			}
		}
		c.AddAttrs(slog.Attr{Key: a.Key, Value: v})
		return true
	})
	return c
}

func (h *activityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next, c.text = h.next.WithAttrs(as), h.text.WithAttrs(as)
	if !h.group {
		c.attrs = append(slices.Clip(h.attrs), as...)
	}
	return &c
}

func (h *activityHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next, c.text, c.group = h.next.WithGroup(name), h.text.WithGroup(name), true
	return &c
}

// keep keeps l as the latest line.
func (a *Activity) keep(l keptLine) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.lines) < maxLines {
		a.lines = append(a.lines, l)
	} else {
		a.lines[a.next] = l
		a.next = (a.next + 1) % maxLines
	}
}

// observe counts r and follows the session it belongs to.
func (a *Activity) observe(r slog.Record, with []slog.Attr) {
	get := func(key string) slog.Value {
		var v slog.Value
		r.Attrs(func(at slog.Attr) bool {
			if at.Key == key {
				v = at.Value
				return false
			}
			return true
		})
		if v.Kind() == slog.KindAny && v.Any() == nil {
			for _, at := range with {
				if at.Key == key {
					v = at.Value
				}
			}
		}
		return v
	}
	event := -1
	state := ""
	switch r.Message {
	case "queued":
		event, state = EventAccepted, "queued"
	case "message rejected", "mail rejected":
		event, state = EventRejected, "rejected"
	case "rcpt":
		if c := get("code"); c.Kind() == slog.KindInt64 && c.Int64() >= 400 {
			event = EventRejected
		}
		state = "RCPT"
	case "delivered":
		event = EventDelivered
	case "delivery failed":
		event = EventBounced
	case "auth failed":
		event, state = EventAuthFailed, "AUTH failed"
	case "auth block started":
		event = EventAuthBlocked
	case "connect", "disconnect", "TLS established", "auth", "mail":
	default:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if event >= 0 {
		m := now.Unix() / 60
		slot := &a.minutes[m%60]
		if slot.minute != m {
			*slot = minuteCounts{minute: m}
		}
		slot.n[event]++
	}
	conn := get("conn").String()
	if conn == "" {
		return
	}
	s := a.live[conn]
	switch r.Message {
	case "connect":
		if len(a.live) >= maxLive {
			return
		}
		a.live[conn] = &LiveSession{Conn: conn, Remote: get("remote").String(), Listener: get("listener").String(),
			Since: now, State: "connected"}
		return
	case "disconnect":
		delete(a.live, conn)
		return
	}
	if s == nil {
		return
	}
	switch r.Message {
	case "TLS established":
		s.TLS, s.State = get("tls").String(), "TLS"
	case "auth":
		s.User, s.State = get("user").String(), "AUTH"
	case "mail":
		s.State = "MAIL"
	default:
		if state != "" {
			s.State = state
		}
	}
}

// Series is one kind of event over the last hour, a count per minute, oldest first.
type Series struct {
	Name    string
	Total   int
	Max     int
	Minutes [60]int
}

// LastHour returns a Series per kind of event.
func (a *Activity) LastHour() []Series {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now().Unix() / 60
	out := make([]Series, numEvents)
	for k := range out {
		out[k].Name = eventNames[k]
	}
	for i := range 60 {
		m := now - 59 + int64(i)
		slot := a.minutes[m%60]
		if slot.minute != m {
			continue
		}
		for k := range out {
			n := slot.n[k]
			out[k].Minutes[i] = n
			out[k].Total += n
			out[k].Max = max(out[k].Max, n)
		}
	}
	return out
}

// Live returns the sessions open now, oldest first.
func (a *Activity) Live() []LiveSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]LiveSession, 0, len(a.live))
	for _, s := range a.live {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y LiveSession) int { return x.Since.Compare(y.Since) })
	return out
}

// Lines returns the recent log lines, oldest first.
func (a *Activity) Lines() []string {
	a.mu.Lock()
	kept := append(slices.Clone(a.lines[a.next:]), a.lines[:a.next]...)
	a.mu.Unlock()
	a.fmtMu.Lock()
	defer a.fmtMu.Unlock()
	out := make([]string, len(kept))
	for i, l := range kept {
		a.fmtBuf.Reset()
		_ = l.h.Handle(context.Background(), l.r) // into memory: cannot fail
		out[i] = strings.TrimSuffix(a.fmtBuf.String(), "\n")
	}
	return out
}
