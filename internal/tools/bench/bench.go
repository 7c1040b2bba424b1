// Package bench is tern bench: an SMTP load generator that sends a bounded number of messages
// (or for a bounded time) over N parallel sessions through internal/smtpclient, and measures
// what a server does under it: messages and megabytes per second, the latency of each message
// and of each command, the connections made and the failures by reply code.
//
// # Design
//
// Each session is a goroutine with one smtpclient.Client at a time; a message number is taken
// from a shared counter, so the run stops at exactly --messages, or when --duration has passed
// (messages under way then are finished, not cut). Without Reuse every message has its own
// connection (as smtp-source without -d); with it a session keeps its connection until the
// server refuses or drops it.
//
// The text of every message is made once (message.go): only the Message-ID's number differs,
// written into a buffer each session keeps, so making a message allocates nothing. Latencies go
// to fixed-size log-linear histograms (hist.go) and throughput to a timeline that merges its
// intervals when it fills (timeline.go): a run of any length needs the same memory.
//
// Per-command latencies come from smtpclient's trace hook: the time from a command line's
// write to the last line of its reply (with PIPELINING, from the batch's write; the end of the
// data, "data-end", from the 354 to the reply after the message). CONNECT is dialing, TLS with
// Options.TLS and the greeting; STARTTLS its reply and handshake.
//
// The package keeps no global state; the clock can be replaced (Options.Now).
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// ErrUsage marks an error in the options: nothing was sent.
var ErrUsage = errors.New("bench: invalid options")

// errPanic marks a session that ended on a bug (its kind in the errors is "panic").
var errPanic = errors.New("panic")

// Defaults of the options.
const (
	DefaultSessions = 1
	DefaultMessages = 100 // without --messages and --duration
	DefaultSize     = 5120
	DefaultTimeout  = 60 * time.Second
)

// Options configure a run.
type Options struct {
	// Server is HOST:PORT.
	Server string
	// Sessions is how many SMTP sessions run in parallel. Default: 1.
	Sessions int
	// Messages is how many messages to send in all; Duration how long to go on sending. A run
	// stops at the first of the two that is set; with neither, DefaultMessages.
	Messages int
	Duration time.Duration
	// Size is each message's size in octets, header included. Default: 5120.
	Size int
	// Recipients per message: the To addresses in turn, then the same addresses again with a
	// subaddress (local+2@domain, local+3@domain...). Default: 1.
	Recipients int
	// Pipeline sends MAIL, the RCPTs and DATA together when the server offers PIPELINING; by
	// default one command waits for the reply of the one before, as smtp-source does.
	Pipeline bool
	// Reuse sends the next message over the same connection instead of a new one.
	Reuse bool
	// StartTLS (after EHLO) or TLS (from the start, port 465); Insecure skips the
	// certificate's check; CAFile trusts the certificates in this PEM file instead of the
	// system's.
	StartTLS, TLS, Insecure bool
	CAFile                  string
	// Auth is a SASL mechanism (PLAIN, SCRAM-SHA-256...; not GSSAPI) to log in with, as User
	// with Password, once per connection.
	Auth, User, Password string
	// From and To are the envelope sender and the recipients. Defaults: bench@ and
	// bench-sink@ the --server host.
	From string
	To   []string
	// EHLO is the name EHLO sends. Default: "bench.invalid".
	EHLO string
	// Timeout bounds connecting and each command. Default: 60 seconds.
	Timeout time.Duration
	// Progress, if set, gets a line that rewrites itself (with CR) every ProgressEvery
	// (default: 1 s): messages, rate, errors. Left empty at the end.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Dialer opens connections. Default: a net.Dialer.
	Dialer smtpclient.Dialer
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Check validates the options and fills in the defaults (Run does it too); the password is
// not needed for it.
func (o *Options) Check() error {
	if _, _, err := net.SplitHostPort(o.Server); err != nil || o.Server == "" {
		return fmt.Errorf("%w: --server HOST:PORT is required", ErrUsage)
	}
	switch {
	case o.Sessions < 0, o.Messages < 0, o.Duration < 0, o.Size < 0, o.Recipients < 0:
		return fmt.Errorf("%w: --sessions, --messages, --duration, --size and --recipients cannot be negative", ErrUsage)
	case o.StartTLS && o.TLS:
		return fmt.Errorf("%w: --starttls and --tls: give one or the other", ErrUsage)
	case o.Auth != "" && o.User == "":
		return fmt.Errorf("%w: --auth needs --user", ErrUsage)
	case o.Size > 1<<30:
		return fmt.Errorf("%w: --size is at most 1 GiB", ErrUsage)
	}
	if o.Auth != "" {
		o.Auth = strings.ToUpper(o.Auth)
		if _, err := sasl.NewClient(o.Auth, sasl.ClientOptions{}); err != nil {
			return fmt.Errorf("%w: --auth %s: tern bench speaks the password and token mechanisms, not this one", ErrUsage, o.Auth)
		}
	}
	host, _, _ := net.SplitHostPort(o.Server)
	o.Sessions = max(o.Sessions, DefaultSessions)
	if o.Messages == 0 && o.Duration == 0 {
		o.Messages = DefaultMessages
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	o.Recipients = max(o.Recipients, 1)
	domain := host
	if ip := net.ParseIP(host); ip != nil {
		// RFC 5321 §4.1.3: an address literal.
		domain = "[" + host + "]"
		if ip.To4() == nil {
			domain = "[IPv6:" + host + "]"
		}
	}
	if o.From == "" {
		o.From = "bench@" + domain
	}
	if len(o.To) == 0 {
		o.To = []string{"bench-sink@" + domain}
	}
	for _, a := range append([]string{o.From}, o.To...) {
		if _, err := smtp.ParseAddress(a); err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrUsage, a, err)
		}
	}
	if o.EHLO == "" {
		o.EHLO = "bench.invalid"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// recipients are the forward-paths of every message (see Options.Recipients).
func (o *Options) recipients() []smtpclient.Recipient {
	out := make([]smtpclient.Recipient, o.Recipients)
	for i := range out {
		a := o.To[i%len(o.To)]
		if n := i / len(o.To); n > 0 {
			local, domain, _ := strings.Cut(a, "@")
			a = fmt.Sprintf("%s+%d@%s", local, n+1, domain)
		}
		out[i].Addr = a
	}
	return out
}

// tlsConfig is the client's TLS configuration: the --server host verified against the
// system's roots or CAFile's, or not at all with Insecure.
func (o *Options) tlsConfig() (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(o.Server)
	cfg, err := tlsutil.ClientConfig(host, o.CAFile, o.Insecure)
	if err != nil {
		return nil, fmt.Errorf("%w: --ca: %v", ErrUsage, err)
	}
	return cfg, nil
}

// run is the state the sessions of one run share.
type run struct {
	o      Options
	msg    *message
	rcpts  []smtpclient.Recipient
	tlsCfg *tls.Config
	dialer smtpclient.Dialer
	start  time.Time

	issued   atomic.Int64 // message numbers handed out
	stopped  atomic.Bool  // Duration has passed
	accepted atomic.Int64
	failed   atomic.Int64
	rcptsOK  atomic.Int64
	bytes    atomic.Int64
	conns    atomic.Int64
	connErrs atomic.Int64

	msgLat *Histogram
	cmdLat map[string]*Histogram // fixed at the start: read without a lock
	errs   errorCounts
	tl     *timeline
}

// Run sends the messages and returns what it measured. Cancelling ctx stops the run: what
// was under way is dropped, neither counted as sent nor as failed, and the result covers what
// finished. The error is for the options (ErrUsage) only: failures of the server are counted
// in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	r := &run{o: o, rcpts: o.recipients(), msgLat: &Histogram{}, cmdLat: map[string]*Histogram{}, dialer: o.Dialer}
	if r.dialer == nil {
		// No TCP keep-alive: a bench connection lives for a message or a run, and the three
		// setsockopt calls that turn it on would be a tenth of a short connection's syscalls.
		r.dialer = &net.Dialer{KeepAlive: -1}
	}
	if o.StartTLS || o.TLS {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		r.tlsCfg = cfg
	}
	for _, c := range commandNames {
		r.cmdLat[c] = &Histogram{}
	}
	r.start = o.Now()
	r.msg = newMessage(o.Size, o.From, o.To[0], runID(), r.start, o.Messages)
	r.tl = newTimeline(r.start, 100*time.Millisecond)
	if o.Duration > 0 {
		t := time.AfterFunc(o.Duration, func() { r.stopped.Store(true) })
		defer t.Stop()
	}
	progressDone := r.progress(ctx)
	var wg sync.WaitGroup
	for i := range o.Sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				// A bug here ends this session only: counted, and the run goes on.
				if v := recover(); v != nil {
					r.failed.Add(1)
					r.errs.add(fmt.Errorf("%w in session %d: %v\n%s", errPanic, i, v, debug.Stack()))
				}
			}()
			(&session{r: r, id: i}).loop(ctx)
		}()
	}
	wg.Wait()
	progressDone()
	return r.result(o.Now().Sub(r.start)), nil
}

// next hands out the number of the next message to send; false when the run is over.
func (r *run) next(ctx context.Context) (int64, bool) {
	if ctx.Err() != nil || r.stopped.Load() {
		return 0, false
	}
	n := r.issued.Add(1)
	if r.o.Messages > 0 && n > int64(r.o.Messages) {
		return 0, false
	}
	return n, true
}

// progress writes the live line until the returned func is called (which clears it).
func (r *run) progress(ctx context.Context) (stop func()) {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.o.ProgressEvery)
		defer t.Stop()
		// The line is for a person watching: a failed write loses a frame, not a result.
		show := func(s string) { _, _ = fmt.Fprint(r.o.Progress, "\r\033[K"+s) }
		var last progressMark
		for {
			select {
			case <-done:
				show("")
				return
			case <-ctx.Done():
				show("")
				return
			case <-t.C:
				var line string
				line, last = r.progressLine(last)
				show(line)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// progressMark is where the previous progress line stood.
type progressMark struct {
	n  int64
	at time.Time
}

// progressLine is what the live line says now: messages sent, the rate since the previous line
// and since the start, failures, time.
func (r *run) progressLine(prev progressMark) (string, progressMark) {
	now := r.o.Now()
	n := r.accepted.Load()
	if prev.at.IsZero() {
		prev.at = r.start
	}
	of := ""
	if r.o.Messages > 0 {
		of = fmt.Sprintf("/%d", r.o.Messages)
	}
	el := now.Sub(r.start)
	line := fmt.Sprintf("%d%s messages  %.0f/s now  %.0f/s average  %d errors  %s", n, of,
		float64(n-prev.n)/max(now.Sub(prev.at).Seconds(), 1e-3), float64(n)/max(el.Seconds(), 1e-3),
		r.failed.Load(), el.Truncate(time.Second))
	return line, progressMark{n, now}
}

// runID tells this run's Message-IDs from another's.
func runID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b)
}
