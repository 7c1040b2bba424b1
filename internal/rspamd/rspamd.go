// Package rspamd asks rspamd about each message over its HTTP protocol (POST /checkv2 to its
// normal worker, as rspamd's protocol documentation describes it), and turns its answer into a
// filter verdict for the session (smtpserver.FilterSession): no milter proxy needed.
//
// The message goes as it is stored, with the envelope in rspamd's request headers (From, one
// Rcpt per recipient, IP, Helo, User, Queue-Id, MTA-Name). rspamd's action decides: reject
// 554 5.7.1, soft reject and greylist 451 4.7.1, discard, quarantine (held in the queue),
// rewrite subject and add header (X-Spam: Yes), no action. rspamd's milter.add_headers and
// milter.remove_headers are applied, and every checked message gets X-Spam-Status,
// X-Spam-Score and X-Spamd-Result where rspamd did not set its own. When rspamd cannot be reached or
// does not answer within the timeout, the configured default applies (tempfail 451 4.7.1, or
// accept). Its answer is read to at most MaxResponse octets.
package rspamd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// Config configures the client.
type Config struct {
	// URL is the normal worker's base URL, e.g. http://127.0.0.1:11333.
	URL      string
	Password string
	Roles    []smtpserver.Role
	Timeout  time.Duration
	TempFail bool
	Logger   *slog.Logger
	// Client does the HTTP requests; nil: one with Timeout.
	Client *http.Client
}

// MaxResponse bounds rspamd's answer.
const MaxResponse = 4 << 20

// Filter is rspamd as a content filter; it implements smtpserver.Filter.
type Filter struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
}

// New returns the filter.
func New(cfg Config) *Filter {
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: cfg.Timeout}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Filter{cfg: cfg, client: c, log: log.With("filter", "rspamd")}
}

// Open returns the session's filter, nil for a listener rspamd does not check.
func (f *Filter) Open(_ context.Context, c smtpserver.FilterConn) smtpserver.FilterSession {
	if !slices.Contains(f.cfg.Roles, c.Role) {
		return nil
	}
	return &session{f: f, conn: c}
}

type session struct {
	f    *Filter
	conn smtpserver.FilterConn
}

// rspamd is asked once per message, at its end: the earlier stages go on.
func (s *session) Connect(context.Context, smtpserver.FilterState) filter.Verdict {
	return filter.Verdict{}
}
func (s *session) Helo(context.Context, smtpserver.FilterState) filter.Verdict {
	return filter.Verdict{}
}
func (s *session) Mail(context.Context, smtpserver.FilterState) filter.Verdict {
	return filter.Verdict{}
}
func (s *session) Rcpt(context.Context, smtpserver.FilterState, string, string) filter.Verdict {
	return filter.Verdict{}
}
func (s *session) Abort(context.Context) {}
func (s *session) Close()                {}

// Message sends the message to /checkv2 and maps the answer.
func (s *session) Message(ctx context.Context, st smtpserver.FilterState, h filter.Header, body io.Reader) filter.Verdict {
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	res, err := s.check(ctx, st, h, body)
	if err != nil {
		if s.f.cfg.TempFail {
			s.f.log.Warn("rspamd failed", "err", err, "default", "tempfail")
			return filter.Verdict{Action: filter.TempFail, Reply: smtp.R(smtp.CodeLocalError, smtp.EnhNotAuthorized, "Error: content filter unavailable, try again later")}
		}
		s.f.log.Warn("rspamd failed", "err", err, "default", "accept")
		return filter.Verdict{}
	}
	v := res.Verdict(h)
	s.f.log.Info("rspamd", "msgid", st.QueueID, "action", res.Action, "score", res.Score, "required", res.RequiredScore)
	return v
}

func (s *session) check(ctx context.Context, st smtpserver.FilterState, h filter.Header, body io.Reader) (*Result, error) {
	var head strings.Builder
	for _, f := range h.Fields {
		head.WriteString(f.Raw)
	}
	if h.Sep {
		head.WriteString("\r\n")
	}
	msg := io.MultiReader(strings.NewReader(head.String()), body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.f.cfg.URL, "/")+"/checkv2", msg)
	if err != nil {
		return nil, err
	}
	hd := req.Header
	hd.Set("From", st.From)
	for _, r := range st.Rcpts {
		hd.Add("Rcpt", r)
	}
	hd.Set("IP", s.conn.Remote.Addr().Unmap().String())
	hd.Set("Helo", st.Helo)
	hd.Set("Queue-Id", st.QueueID)
	hd.Set("MTA-Name", s.conn.Hostname)
	if st.User != "" {
		hd.Set("User", st.User)
	}
	if s.f.cfg.Password != "" {
		hd.Set("Password", s.f.cfg.Password)
	}
	resp, err := s.f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read to its end or abandoned: nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd: HTTP %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxResponse {
		return nil, errors.New("rspamd: answer too large")
	}
	return ParseResult(b)
}

// Result is the part of rspamd's /checkv2 answer tern uses.
type Result struct {
	Action        string             `json:"action"`
	Score         float64            `json:"score"`
	RequiredScore float64            `json:"required_score"`
	Subject       string             `json:"subject"`
	IsSkipped     bool               `json:"is_skipped"`
	Symbols       map[string]Symbol  `json:"symbols"`
	Messages      map[string]any     `json:"messages"`
	Milter        *Milter            `json:"milter"`
	rawAdd        map[string][]added // milter.add_headers, normalised
}

// Symbol is one rule that matched.
type Symbol struct {
	Score   float64  `json:"score"`
	Options []string `json:"options"`
}

// Milter holds the header edits rspamd asks for (its milter_headers module).
type Milter struct {
	AddHeaders    map[string]json.RawMessage `json:"add_headers"`
	RemoveHeaders map[string]json.RawMessage `json:"remove_headers"`
}

type added struct {
	Value string `json:"value"`
	Order *int   `json:"order"`
}

// ParseResult decodes rspamd's answer. add_headers values come as a string, an object
// {value, order} or a list of either; anything else is an error.
func ParseResult(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("rspamd: bad answer: %w", err)
	}
	if r.Action == "" {
		return nil, errors.New("rspamd: answer without an action")
	}
	if r.Milter != nil {
		r.rawAdd = map[string][]added{}
		for name, raw := range r.Milter.AddHeaders {
			vs, err := decodeAdded(raw)
			if err != nil {
				return nil, fmt.Errorf("rspamd: add_headers %q: %w", name, err)
			}
			r.rawAdd[name] = vs
		}
	}
	return &r, nil
}

func decodeAdded(raw json.RawMessage) ([]added, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []added{{Value: s}}, nil
	}
	var a added
	if json.Unmarshal(raw, &a) == nil && len(raw) > 0 && raw[0] == '{' {
		return []added{a}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	var out []added
	for _, item := range list {
		vs, err := decodeAdded(item)
		if err != nil || len(out) > 100 {
			return nil, errors.New("bad list")
		}
		out = append(out, vs...)
	}
	return out, nil
}

// The replies of rspamd's refusals.
var (
	replyReject   = smtp.R(smtp.CodeTransactionFailed, smtp.EnhNotAuthorized, "Error: message rejected as spam")
	replySoft     = smtp.R(smtp.CodeLocalError, smtp.EnhNotAuthorized, "Error: try again later")
	replyGreylist = smtp.R(smtp.CodeLocalError, smtp.EnhNotAuthorized, "Error: greylisted, try again later")
)

// Verdict maps the answer to a verdict for a message with header h.
func (r *Result) Verdict(h filter.Header) filter.Verdict {
	var v filter.Verdict
	switch r.Action {
	case "reject":
		v.Action, v.Reply = filter.Reject, withMessage(replyReject, r.Messages)
		return v
	case "soft reject":
		v.Action, v.Reply = filter.TempFail, withMessage(replySoft, r.Messages)
		return v
	case "greylist":
		v.Action, v.Reply = filter.TempFail, replyGreylist
		return v
	case "discard":
		v.Action = filter.Discard
		return v
	case "quarantine":
		v.Quarantine = fmt.Sprintf("rspamd score %.2f", r.Score)
	}
	spam := r.Action == "add header" || r.Action == "rewrite subject" || r.Action == "quarantine"
	// Fields claiming a result only we (and rspamd) may give go first, as with
	// Authentication-Results; then rspamd's own edits; then ours, for what rspamd did not set.
	for _, name := range []string{"X-Spam", "X-Spam-Status", "X-Spam-Score", "X-Spamd-Result"} {
		v.Edits = append(v.Edits, filter.Edit{Kind: filter.ChangeHeader, Name: name, Index: 0})
	}
	if r.Milter != nil {
		v.Edits = append(v.Edits, r.removeEdits()...)
		v.Edits = append(v.Edits, r.addEdits()...)
	}
	if r.Action == "rewrite subject" && r.Subject != "" {
		if has(h, "Subject") {
			v.Edits = append(v.Edits, filter.Edit{Kind: filter.ChangeHeader, Name: "Subject", Index: 1, Value: r.Subject})
		} else {
			v.Edits = append(v.Edits, filter.Edit{Kind: filter.AddHeader, Name: "Subject", Value: r.Subject})
		}
	}
	yes := "No"
	if spam {
		yes = "Yes"
	}
	for _, f := range []struct{ name, value string }{
		{"X-Spam", map[bool]string{true: "Yes"}[spam]},
		{"X-Spam-Status", fmt.Sprintf("%s, score=%.2f required=%.2f action=%q", yes, r.Score, r.RequiredScore, r.Action)},
		{"X-Spam-Score", strconv.FormatFloat(r.Score, 'f', 2, 64)},
		{"X-Spamd-Result", r.spamdResult(spam)},
	} {
		if _, ok := r.rawAdd[f.name]; !ok && f.value != "" {
			v.Edits = append(v.Edits, filter.Edit{Kind: filter.AddHeader, Name: f.name, Value: f.value})
		}
	}
	return v
}

// withMessage uses rspamd's smtp_message as the reply text when it sent one.
func withMessage(r smtp.Reply, msgs map[string]any) smtp.Reply {
	if m, ok := msgs["smtp_message"].(string); ok && m != "" {
		r.Text = strings.Map(func(c rune) rune {
			if c < 32 || c == 127 {
				return ' '
			}
			return c
		}, m)
		if len(r.Text) > 400 {
			r.Text = r.Text[:400]
		}
	}
	return r
}

func has(h filter.Header, name string) bool {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// removeEdits maps milter.remove_headers: name → 0 (every one) or N (the Nth); rspamd's
// negative indexes (from the end) remove them all, the safe reading.
func (r *Result) removeEdits() []filter.Edit {
	var es []filter.Edit
	for _, name := range sortedKeys(r.Milter.RemoveHeaders) {
		n, err := strconv.Atoi(string(r.Milter.RemoveHeaders[name]))
		if err != nil || n < 0 {
			n = 0
		}
		es = append(es, filter.Edit{Kind: filter.ChangeHeader, Name: name, Index: n})
	}
	return es
}

// addEdits maps milter.add_headers: an order of 0 or more inserts the field after that many
// (0: at the top), no order or a negative one appends it.
func (r *Result) addEdits() []filter.Edit {
	var es []filter.Edit
	for _, name := range sortedKeys(r.rawAdd) {
		for _, a := range r.rawAdd[name] {
			if a.Order != nil && *a.Order >= 0 {
				es = append(es, filter.Edit{Kind: filter.InsertHeader, Name: name, Value: a.Value, Index: *a.Order})
			} else {
				es = append(es, filter.Edit{Kind: filter.AddHeader, Name: name, Value: a.Value})
			}
		}
	}
	return es
}

// spamdResult is an X-Spamd-Result field like rspamd's own: the verdict, then each symbol
// with its score and options, by name.
func (r *Result) spamdResult(spam bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "default: %s [%.2f / %.2f]", map[bool]string{true: "True", false: "False"}[spam], r.Score, r.RequiredScore)
	for _, name := range sortedKeys(r.Symbols) {
		s := r.Symbols[name]
		fmt.Fprintf(&b, ";\n\t%s(%.2f)[%s]", name, s.Score, strings.Join(s.Options, ","))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
