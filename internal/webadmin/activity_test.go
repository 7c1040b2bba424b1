package webadmin

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestActivity feeds Activity the lines a server logs, as it logs them (a session's logger
// made With its conn, remote and listener), and checks the counts, the live sessions and the
// lines kept.
func TestActivity(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := NewActivity(c.now)
	var out bytes.Buffer
	// The server logs at warn: the info lines are counted all the same, but not kept.
	log := slog.New(a.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	s1 := log.With("conn", 1, "remote", "192.0.2.1", "listener", "submission")
	s1.Info("connect")
	s1.Info("TLS established", "tls", "TLS1.3 TLS_AES_128_GCM_SHA256")
	s1.Info("auth", "mech", "PLAIN", "user", "bob@example.test")
	s1.Info("mail", "from", "bob@example.test")
	s1.Info("rcpt", "rcpt", "x@example.org", "code", 250)
	s1.Info("rcpt", "rcpt", "y@example.org", "code", 550)
	s1.Info("queued", "msgid", "M1")
	s2 := log.With("conn", 2, "remote", "198.51.100.7", "listener", "smtp")
	s2.Info("connect")
	s2.Warn("auth failed", "mech", "PLAIN", "user", "bob")
	c.advance(2 * time.Minute)
	log.Info("delivered", "msgid", "M1", "rcpt", "x@example.org")
	log.Warn("delivery failed", "msgid", "M1", "rcpt", "z@example.org")
	log.Warn("auth block started", "kind", "client")
	s2.Info("message rejected", "code", 554)
	s2.Info("disconnect")
	log.WithGroup("g").Info("queued") // not the server's line: in a group
	log.Info("rcpt")                  // no code: not a refusal

	want := map[string]int{"accepted": 1, "rejected": 2, "delivered": 1, "bounced": 1, "AUTH failures": 1, "AUTH blocks": 1}
	for _, s := range a.LastHour() {
		if s.Total != want[s.Name] {
			t.Errorf("%s: %d in the last hour, want %d", s.Name, s.Total, want[s.Name])
		}
	}
	if got := a.LastHour()[EventAccepted].Minutes[57]; got != 1 {
		t.Errorf("accepted 2 minutes ago: %d, want 1", got)
	}
	live := a.Live()
	if len(live) != 1 || live[0] != (LiveSession{Conn: "1", Remote: "192.0.2.1", Listener: "submission", Since: live[0].Since,
		State: "queued", TLS: "TLS1.3 TLS_AES_128_GCM_SHA256", User: "bob@example.test"}) {
		t.Errorf("live sessions: %+v", live)
	}
	lines := a.Lines()
	if len(lines) != 3 || !strings.Contains(lines[0], `msg="auth failed"`) || !strings.Contains(lines[0], "conn=2") {
		t.Errorf("lines kept (the warnings only): %q", lines)
	}
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Errorf("the log got %d lines, want the 3 warnings:\n%s", got, out.String())
	}

	// A value that changes after it was logged is kept as it was.
	type state struct{ N int }
	st := &state{N: 1}
	log.Warn("state", "st", st, "err", errors.New("boom"))
	st.N = 2
	if l := a.Lines(); !strings.Contains(l[len(l)-1], `st=&{N:1} err=boom`) {
		t.Errorf("a changed value: %q", l[len(l)-1])
	}

	// An hour later, nothing is left of those counts.
	c.advance(time.Hour)
	for _, s := range a.LastHour() {
		if s.Total != 0 {
			t.Errorf("%s an hour later: %d", s.Name, s.Total)
		}
	}
	for range maxLines + 5 {
		log.Warn("x")
	}
	if l := a.Lines(); len(l) != maxLines || !strings.Contains(l[maxLines-1], `msg=x`) {
		t.Errorf("after many lines: %d kept", len(l))
	}
}

func TestActivityPages(t *testing.T) {
	f := newFixture(t, false)
	b := f.loggedIn()
	s := slog.New(f.act.Handler(slog.DiscardHandler)).With("conn", 7, "remote", "203.0.113.9", "listener", "smtp")
	s.Info("connect")
	s.Info("queued", "msgid", "<script>")
	r := b.do("GET", "/", nil)
	for _, want := range []string{`<span class="total">1</span>`, `aria-label="accepted per minute over the last hour: 1 in all"`,
		`<title>1 accepted, 0 min ago</title>`, `<dd class="auth-count">0</dd>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("overview lacks %q:\n%s", want, r.body)
		}
	}
	if r := b.do("GET", "/sessions", nil); !strings.Contains(r.body, "<td>203.0.113.9</td><td>smtp</td>") || !strings.Contains(r.body, "<td>queued</td>") {
		t.Errorf("sessions page:\n%s", r.body)
	}
	// The log page has the handler's own lines (the login), escaped.
	if r := b.do("GET", "/log", nil); !strings.Contains(r.body, `msg=&#34;webadmin: login&#34;`) {
		t.Errorf("log page:\n%s", r.body)
	}
}

// BenchmarkLogLine is the cost of one of a session's log lines with the admin web interface's
// Activity in front of the log handler ("activity") and without ("plain").
func BenchmarkLogLine(b *testing.B) {
	for _, bc := range []struct {
		name string
		wrap func(slog.Handler) slog.Handler
	}{
		{"plain", func(h slog.Handler) slog.Handler { return h }},
		{"activity", NewActivity(nil).Handler},
	} {
		b.Run(bc.name, func(b *testing.B) {
			log := slog.New(bc.wrap(slog.NewTextHandler(io.Discard, nil))).With("conn", 1, "remote", "192.0.2.1", "listener", "smtp")
			b.ReportAllocs()
			for b.Loop() {
				log.Info("rcpt", "from", "a@example.org", "rcpt", "b@example.test", "code", 250, "reason", "Ok")
			}
		})
	}
}
