package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tern-mail/tern/internal/smtpclient"
)

// Result is what a run measured; its JSON is tern bench --json.
type Result struct {
	Server     string    `json:"server"`
	Started    time.Time `json:"started"`
	Sessions   int       `json:"sessions"`
	Size       int       `json:"message_size"` // octets per message, header included
	Recipients int       `json:"recipients_per_message"`
	Pipeline   bool      `json:"pipeline"`
	Reuse      bool      `json:"reuse"`
	TLS        string    `json:"tls"` // "none", "starttls" or "tls"
	Auth       string    `json:"auth,omitempty"`

	Elapsed float64 `json:"elapsed_seconds"`
	// Messages were accepted (250 after the data) for at least one recipient; Failed were not.
	Messages int64 `json:"messages"`
	Failed   int64 `json:"failed"`
	// RecipientsAccepted counts each recipient of the messages accepted that the server took.
	RecipientsAccepted int64   `json:"recipients_accepted"`
	Bytes              int64   `json:"bytes"`
	MessagesPerSec     float64 `json:"messages_per_second"`
	MBPerSec           float64 `json:"mb_per_second"` // 10^6 octets of message text
	Connections        int64   `json:"connections"`
	ConnectionErrors   int64   `json:"connection_errors"`

	// Latency is each message's, from MAIL to the reply to its end (on a connection already
	// made); Commands each command's (see the package doc).
	Latency  Stats          `json:"latency"`
	Commands []CommandStats `json:"commands"`
	// Errors are the failures by kind, most frequent first: a refused recipient of a message
	// that was accepted counts here too.
	Errors []ErrorCount `json:"errors"`

	// Throughput is the rate in each interval of the run; Distribution the messages'
	// latencies in bars on a logarithmic scale (for plots).
	Throughput   []Point  `json:"throughput"`
	Distribution []Bucket `json:"latency_distribution"`
}

// CommandStats are one command's latencies.
type CommandStats struct {
	Command string `json:"command"`
	Stats
}

// ErrorCount is how often one kind of failure happened, and the first one's text.
type ErrorCount struct {
	// Kind is the command and the reply code with the enhanced code ("RCPT 550 5.1.1"), or the
	// command and what went wrong when no reply came ("CONNECT refused", "DATA timeout").
	Kind    string `json:"kind"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
}

// errorCounts counts failures by kind; the kinds are few (commands times codes), so the map
// stays small.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]*ErrorCount
}

func (ec *errorCounts) add(err error) {
	kind := errorKind(err)
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.m == nil {
		ec.m = map[string]*ErrorCount{}
	}
	if e := ec.m[kind]; e != nil {
		e.Count++
		return
	}
	ec.m[kind] = &ErrorCount{Kind: kind, Count: 1, Example: err.Error()}
}

func (ec *errorCounts) list() []ErrorCount {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	out := make([]ErrorCount, 0, len(ec.m))
	for _, e := range ec.m {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// errorKind names the kind of a failure (ErrorCount.Kind).
func errorKind(err error) string {
	cmd := "?"
	var e *smtpclient.Error
	if errors.As(err, &e) {
		cmd = e.Command
		if e.Code != 0 {
			k := cmd + " " + strconv.Itoa(e.Code)
			if e.Enhanced != "" {
				k += " " + e.Enhanced
			}
			return k
		}
	}
	switch {
	case errors.Is(err, errPanic):
		return "panic"
	case errors.Is(err, smtpclient.ErrMessageTooBig):
		return cmd + " over the server's SIZE"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return cmd + " timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return cmd + " refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return cmd + " reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return cmd + " closed"
	}
	return cmd + " error"
}

// result gathers the counters into a Result.
func (r *run) result(elapsed time.Duration) *Result {
	o := &r.o
	res := &Result{
		Server: o.Server, Started: r.start, Sessions: o.Sessions, Size: r.msg.size(),
		Recipients: o.Recipients, Pipeline: o.Pipeline, Reuse: o.Reuse, TLS: "none", Auth: o.Auth,
		Elapsed:            elapsed.Seconds(),
		Messages:           r.accepted.Load(),
		Failed:             r.failed.Load(),
		RecipientsAccepted: r.rcptsOK.Load(),
		Bytes:              r.bytes.Load(),
		Connections:        r.conns.Load(),
		ConnectionErrors:   r.connErrs.Load(),
		Latency:            r.msgLat.Stats(),
		Errors:             r.errs.list(),
		Throughput:         r.tl.series(elapsed),
		Distribution:       r.msgLat.Distribution(40),
	}
	switch {
	case o.StartTLS:
		res.TLS = "starttls"
	case o.TLS:
		res.TLS = "tls"
	}
	if secs := elapsed.Seconds(); secs > 0 {
		res.MessagesPerSec = float64(res.Messages) / secs
		res.MBPerSec = float64(res.Bytes) / 1e6 / secs
	}
	for _, c := range commandNames {
		if h := r.cmdLat[c]; h.Count() > 0 {
			res.Commands = append(res.Commands, CommandStats{Command: c, Stats: h.Stats()})
		}
	}
	return res
}

// Describe says what was run, in one line: the server and the load.
func (res *Result) Describe() string {
	mode := "one command at a time"
	if res.Pipeline {
		mode = "pipelined"
	}
	conn := "a connection per message"
	if res.Reuse {
		conn = "connections reused"
	}
	return fmt.Sprintf("%s: %s, %d octets to %s, %s, %s, TLS %s",
		res.Server, plural(res.Sessions, "session"), res.Size, plural(res.Recipients, "recipient"), mode, conn, res.TLS)
}

// WriteText writes the summary people read.
func (res *Result) WriteText(w io.Writer) error {
	p := &errWriter{w: w}
	p.printf("%s\n", res.Describe())
	p.printf("messages    %d sent, %d failed in %.2f s\n", res.Messages, res.Failed, res.Elapsed)
	p.printf("rate        %.1f messages/s, %.2f MB/s\n", res.MessagesPerSec, res.MBPerSec)
	p.printf("connections %d (%d failed)\n", res.Connections, res.ConnectionErrors)
	if p.err != nil {
		return p.err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	tp := &errWriter{w: tw}
	tp.printf("latency (ms)\tcount\tp50\tp90\tp99\tmax\t\n")
	row := func(name string, s Stats) {
		tp.printf("%s\t%d\t%s\t%s\t%s\t%s\t\n", name, s.Count, msText(s.P50), msText(s.P90), msText(s.P99), msText(s.Max))
	}
	row("message", res.Latency)
	for _, c := range res.Commands {
		row(c.Command, c.Stats)
	}
	if tp.err != nil {
		return tp.err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Errors) == 0 {
		p.printf("errors      none\n")
		return p.err
	}
	p.printf("errors\n")
	for _, e := range res.Errors {
		p.printf("  %6d  %s  (%s)\n", e.Count, e.Kind, e.Example)
	}
	return p.err
}

// msText shows a latency in milliseconds with three significant digits or so.
func msText(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// errWriter keeps the first write error, so that a summary is printed without checking each
// line.
type errWriter struct {
	w   io.Writer
	err error
}

func (p *errWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// plural is "1 recipient", "2 recipients".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
