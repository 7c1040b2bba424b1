package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/ratelimit"
)

// Options configure Serve.
type Options struct {
	// Queue is the server's queue. Required.
	Queue Queue
	// SendReports sends the reports due, today's so far included, for OpReportsSend; nil: the
	// server sends none (reports are off).
	SendReports func(ctx context.Context) ([]accounts.SentReport, error)
	// Sessions counts the SMTP sessions open now, for OpStatus; nil counts none.
	Sessions func() int
	// Limits lists the rate limit counters now, for OpLimits; nil lists none.
	Limits func() []ratelimit.Usage
	// Snapshot takes a snapshot of the queue for OpSnapshot (queue.Snapshot); nil: refused.
	Snapshot func() (queue.Snapshot, error)
	// Reload reloads the configuration for OpReload, as SIGHUP does; nil: refused.
	Reload func() error
	// Proc is the process's directory under /proc, for OpStatus's open files and resident
	// size. Default: /proc/self.
	Proc string
	// Drain bounds how long Serve lets requests in progress finish once its context is done;
	// then their connections are closed and their contexts cancelled, and Serve waits as long
	// again at most. Default: DefaultDrain.
	Drain time.Duration
	// Logger gets one line per request (status requests at debug level), and every fault.
	// Nil: discard.
	Logger *slog.Logger
}

// DefaultDrain is Options.Drain's default.
const DefaultDrain = 5 * time.Second

// maxRequest bounds a request: room for some 50,000 queue ids (xargs tern queue delete < ids).
const maxRequest = 1 << 20

// requestTimeout bounds one connection: reading the request, running it, writing the reply.
const requestTimeout = time.Minute

// Serve answers requests on ln until ctx is done (it then closes ln) or ln fails. It returns only
// once every connection it accepted has ended, waiting at most twice opts.Drain; connections still
// running then (a queue operation that ignores its context) are reported in the error.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	if opts.Proc == "" {
		opts.Proc = "/proc/self"
	}
	if opts.Drain <= 0 {
		opts.Drain = DefaultDrain
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Requests keep their context through the drain: a bounce that has begun should finish.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	// Closing the listener ends Accept: the loop's own error, if any, is what counts.
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	err := acceptLoop(ctx, ln, opts.Logger, func(c net.Conn) {
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
			serveConn(reqCtx, c, opts)
		}()
	})
	_ = ln.Close() // may be closed already (ctx done); no new request can come either way

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	wait := time.NewTimer(opts.Drain)
	defer wait.Stop()
	select {
	case <-done:
		return err
	case <-wait.C:
	}
	cancelReqs()
	mu.Lock()
	n := len(conns)
	for c := range conns {
		_ = c.Close() // to end the request early: its handler sees the error
	}
	mu.Unlock()
	opts.Logger.Warn("admin requests still running at shutdown: closed their connections", "requests", n)
	wait.Reset(opts.Drain)
	select {
	case <-done:
		return err
	case <-wait.C:
		return errors.Join(err, fmt.Errorf("admin: %d request(s) still running %v after shutdown began", n, 2*opts.Drain))
	}
}

// acceptLoop hands each accepted connection to serve until ctx is done (nil) or ln fails. Running
// out of file descriptors (a connection flood on the SMTP ports) only pauses it: the admin socket
// is what an operator uses to look at such a server.
func acceptLoop(ctx context.Context, ln net.Listener, log *slog.Logger, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			backoff = 0
			serve(c)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return fmt.Errorf("admin: %w", err)
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		log.Warn("admin accept failed", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// serveConn answers the one request of c. It is the connection's only recover: a panic is logged
// with its stack and answered with an error, and the server goes on.
func serveConn(ctx context.Context, c net.Conn, opts Options) {
	// Writes to a Unix socket are not buffered: a failed Close loses nothing that send did not log.
	defer func() { _ = c.Close() }()
	log := opts.Logger
	c.SetDeadline(time.Now().Add(requestTimeout))
	var req Request
	send := func(rep Reply) {
		if err := json.NewEncoder(c).Encode(rep); err != nil {
			log.Warn("admin reply not sent", "op", req.Op, "err", err)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			log.Error("admin request panic", "op", req.Op, "arg", req.Arg, "panic", v, "stack", string(debug.Stack()))
			send(Reply{Error: "internal error in the server (see its log)"})
		}
	}()
	if err := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&req); err != nil {
		log.Warn("admin request unreadable", "err", err)
		send(Reply{Error: "bad request: " + err.Error()})
		return
	}
	if req.Op == OpBody {
		err := sendBody(opts.Queue, req.Arg, c)
		log.Info("admin request", "op", req.Op, "arg", req.Arg, "err", errText(err))
		return
	}
	var rep Reply
	switch req.Op {
	case OpReportsSend:
		rep = sendReports(ctx, opts)
		log.Info("admin request", "op", req.Op, "reports", len(rep.Reports), "err", rep.Error)
	case OpLimits:
		if opts.Limits != nil {
			rep.Limits = opts.Limits()
		}
		log.Debug("admin request", "op", req.Op, "counters", len(rep.Limits))
	case OpSnapshot:
		rep = snapshot(opts)
		log.Info("admin request", "op", req.Op, "err", rep.Error)
	case OpReload:
		rep = reload(opts)
		log.Info("admin request", "op", req.Op, "err", rep.Error)
	case OpStatus:
		st := status(opts)
		rep.Status = &st
		// The hostile-client suite polls this; one line per poll would bury the log.
		log.Debug("admin request", "op", req.Op)
	default:
		rep = Handle(ctx, opts.Queue, req)
		log.Info("admin request", requestAttrs(req, rep)...)
	}
	send(rep)
}

// maxLoggedIDs bounds the ids a request's log line names.
const maxLoggedIDs = 10

// requestAttrs are the attributes of a request's log line: what it named or selected, what it
// did, and what failed.
func requestAttrs(req Request, rep Reply) []any {
	arg := req.Arg
	switch {
	case req.All:
		arg = "ALL"
	case len(req.IDs) > maxLoggedIDs:
		// xargs can pass thousands: the line names the first ones and counts the rest.
		arg = fmt.Sprintf("%s,... (%d ids)", strings.Join(req.IDs[:maxLoggedIDs], ","), len(req.IDs))
	case len(req.IDs) > 0:
		arg = strings.Join(req.IDs, ",")
	}
	attrs := []any{"op", req.Op, "arg", arg}
	if !req.Select.IsZero() {
		attrs = append(attrs, "select", req.Select)
	}
	if rep.Results != nil {
		attrs = append(attrs, "done", rep.N)
	}
	failed := 0
	for _, r := range rep.Results {
		if r.Error != "" {
			failed++
		}
	}
	errMsg := rep.Error
	if errMsg == "" && failed > 0 {
		errMsg = fmt.Sprintf("%d of %d failed", failed, len(rep.Results))
	}
	return append(attrs, "err", errMsg)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// reload runs OpReload.
func reload(opts Options) Reply {
	if opts.Reload == nil {
		return Reply{Error: "this server does not reload"}
	}
	return Reply{Error: errText(opts.Reload())}
}

// sendReports runs OpReportsSend.
func sendReports(ctx context.Context, opts Options) Reply {
	if opts.SendReports == nil {
		return Reply{Error: "this server sends no reports ([reports] dmarc and tls are off)"}
	}
	sent, err := opts.SendReports(ctx)
	rep := Reply{Reports: sent}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep
}

// snapshot answers OpSnapshot.
func snapshot(opts Options) Reply {
	if opts.Snapshot == nil {
		return Reply{Error: "this server takes no queue snapshots"}
	}
	snap, err := opts.Snapshot()
	if err != nil {
		return Reply{Error: err.Error()}
	}
	return Reply{Snapshot: &snap}
}
