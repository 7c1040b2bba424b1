package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// QueueRequest is one `tern queue` command: the operation (admin.OpList, ...), the messages it
// names or selects (see admin.Request), and how to print them.
type QueueRequest struct {
	Op string
	// IDs are queue ids; All (ALL on the command line) acts on every message Select selects.
	IDs []string
	All bool
	// Arg is flush's "@domain", or OpBody's queue id.
	Arg    string
	Select queue.Selection
	// JSON prints list and show as one JSON object a line, as postqueue -j (see jsonMessage).
	JSON bool
}

// bulk reports whether r may act on several messages: its output then ends with a count.
func (r QueueRequest) bulk() bool { return r.All || len(r.IDs) > 1 || !r.Select.IsZero() }

// QueueCommand runs a `tern queue` operation (see package admin) and prints its outcome. It asks
// the running server through its admin socket; with no server running it opens the queue itself
// (taking the data directory's lock, so the two can never both own it). An operation on several
// messages goes on past those that fail; the error returned then joins one error for each.
func QueueCommand(ctx context.Context, cfg config.Config, r QueueRequest, w io.Writer, log *slog.Logger) error {
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return err
	}
	if r.Op == admin.OpBody {
		return queueBody(ctx, cfg, data, r.Arg, w, log)
	}
	req := admin.Request{Op: r.Op, IDs: r.IDs, All: r.All, Arg: r.Arg, Select: r.Select}
	if len(r.IDs) == 1 && r.Op != admin.OpFlush {
		req.Arg = r.IDs[0] // what a server from before Request.IDs reads
	}
	rep, err := admin.Call(ctx, adminPath(data), req)
	running := err == nil
	switch {
	case running:
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		if rep, err = queueDirect(ctx, data, serverHostname(cfg), req, log); err != nil {
			return dataError(data, "cannot open the queue (the server is not running)", err)
		}
	default:
		return dataError(data, "cannot ask the running server", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	if err := printReply(w, r, rep, running); err != nil {
		return err
	}
	var errs []error
	for _, res := range rep.Results {
		if res.Error != "" {
			errs = append(errs, errors.New(res.Error))
		}
	}
	return errors.Join(errs...)
}

// serverHostname is the host name tern serve uses with cfg: the Reporting-MTA of the report a
// bounce writes with the server stopped.
func serverHostname(cfg config.Config) string {
	if cfg.Hostname == "" {
		return config.DefaultHostname() // as serve does
	}
	return cfg.Hostname
}

// queueBody copies the message id, as queued, to w.
func queueBody(ctx context.Context, cfg config.Config, data, id string, w io.Writer, log *slog.Logger) error {
	err := admin.CallBody(ctx, adminPath(data), id, w)
	if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	q, unlock, err := openQueueDirect(data, serverHostname(cfg), log)
	if err != nil {
		return err
	}
	defer unlock()
	defer func() { _ = q.Close() }() // only read: this command changed nothing to lose
	rc, err := q.Body(id)
	if err != nil {
		return errors.New(admin.ReplyError(id, err))
	}
	defer func() { _ = rc.Close() }() // a reader: closing only unpins the message
	_, err = io.Copy(w, rc)
	return err
}

// openQueueDirect opens the queue with the server stopped, holding the data directory's lock.
func openQueueDirect(data, hostname string, log *slog.Logger) (*queue.Queue, func(), error) {
	unlock, err := lockData(data)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, nil, err
		}
		return nil, nil, errorf(err, "%v (is a server running without its admin socket?)", err)
	}
	q, err := queue.Open(queuePath(data), queue.Options{Hostname: hostname, Logger: log})
	if err != nil {
		unlock()
		return nil, nil, dataError(data, "cannot open the queue (the server is not running)", err)
	}
	return q, unlock, nil
}

// queueDirect runs req on the queue with the server stopped. hostname is the server's: the
// Reporting-MTA and sender domain of the report a bounce writes.
func queueDirect(ctx context.Context, data, hostname string, req admin.Request, log *slog.Logger) (admin.Reply, error) {
	if req.Op == admin.OpList {
		// Listing reads the log without writing, so it needs no lock.
		if err := req.Select.Check(); err != nil {
			return admin.Reply{Error: strings.TrimPrefix(err.Error(), queue.ErrSelection.Error()+"\n")}, nil
		}
		envs, err := queue.List(queuePath(data), log)
		if err != nil {
			return admin.Reply{}, err
		}
		var rep admin.Reply
		for _, it := range queue.ListItems(envs, time.Now()) {
			if req.Select.Match(it) {
				rep.Items = append(rep.Items, it)
			}
		}
		return rep, nil
	}
	q, unlock, err := openQueueDirect(data, hostname, log)
	if err != nil {
		return admin.Reply{}, err
	}
	defer unlock()
	rep := admin.Handle(ctx, q, req)
	if err := q.Close(); err != nil && rep.Error == "" {
		// Holds, releases, deletes and bounces were made durable as they were done; what
		// closing writes last (a flush) may be lost.
		rep.Error = fmt.Sprintf("closing the queue: %v (the last changes may not be on disk)", err)
	}
	return rep, nil
}

// QueueList prints the queue like Postfix's mailq.
func QueueList(cfg config.Config, w io.Writer, log *slog.Logger) error {
	return QueueCommand(context.Background(), cfg, QueueRequest{Op: admin.OpList}, w, log)
}

// printReply prints what rep says was done. The text is buffered: Flush reports the first
// failed write.
func printReply(out io.Writer, r QueueRequest, rep admin.Reply, running bool) error {
	w := bufio.NewWriter(out)
	switch r.Op {
	case admin.OpList:
		if r.JSON {
			return printJSON(out, rep.Items, nil)
		}
		printList(w, rep.Items)
	case admin.OpShow:
		if r.JSON {
			return printJSON(out, rep.Items, rep.Headers)
		}
		for i, it := range rep.Items {
			if i > 0 {
				fmt.Fprintln(w)
			}
			printItem(w, it, rep.Headers[i])
		}
	case admin.OpFlush:
		if rep.N == 0 && len(rep.Results) > 0 && !r.bulk() {
			return nil // the id named could not be flushed: the error says why
		}
		fmt.Fprintf(w, "%d message(s) made due now\n", rep.N)
		if !running {
			fmt.Fprintln(w, "note: the server is not running; they are delivered when it starts")
		}
	default:
		done := map[string]string{
			admin.OpHold: "held", admin.OpRelease: "released", admin.OpDelete: "deleted",
			admin.OpBounce: "returned to sender",
		}[r.Op]
		for _, res := range rep.Results {
			if res.Error == "" {
				fmt.Fprintf(w, "%s: %s\n", res.ID, done)
			}
		}
		if r.bulk() {
			fmt.Fprintf(w, "%d message(s) %s\n", rep.N, done)
		}
	}
	return w.Flush()
}

// printList prints items like Postfix's mailq: id (with "!" when held, "*" while being
// delivered), size, arrival and sender, then each pending recipient with the reason of its last
// failed attempt.
func printList(w *bufio.Writer, items []queue.Item) {
	if len(items) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
		return
	}
	fmt.Fprintf(w, "%-16s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, it := range items {
		e := it.Envelope
		mark := ""
		switch {
		case e.Held:
			mark = "!"
		case it.Busy:
			mark = "*"
		}
		fmt.Fprintf(w, "%-16s %8d %-20s %s\n", e.ID+mark, e.Size, e.Received.Local().Format("Mon Jan _2 15:04:05"), sender(e.From))
		for _, r := range e.Rcpts {
			if r.Status != envelope.Pending {
				continue
			}
			if r.LastError != "" {
				fmt.Fprintf(w, "%47s(%s)\n", "", r.LastError)
			}
			fmt.Fprintf(w, "%47s%s\n", "", r.Addr)
		}
		fmt.Fprintln(w)
		total += e.Size
	}
	fmt.Fprintf(w, "-- %d Kbytes in %d Request%s.\n", (total+1023)/1024, len(items), plural(len(items)))
}

// printItem prints everything the queue knows of one message.
func printItem(w *bufio.Writer, it queue.Item, headers string) {
	e := it.Envelope
	status := "due for delivery"
	switch {
	case e.Held:
		status = "held (tern queue release " + e.ID + ")"
	case it.Busy:
		status = "being delivered"
	case !it.Next.IsZero():
		status = fmt.Sprintf("deferred until %s (after %d attempt%s)", it.Next.Local().Format(time.DateTime), e.Attempts, plural(e.Attempts))
	case it.WaitingFor != "":
		status = "due, waiting for one of the deliveries to " + it.WaitingFor + " to end (queue.destination_concurrency)"
	}
	fmt.Fprintf(w, "Queue ID:   %s\n", e.ID)
	fmt.Fprintf(w, "Status:     %s\n", status)
	fmt.Fprintf(w, "Arrival:    %s\n", e.Received.Local().Format(time.RFC1123Z))
	fmt.Fprintf(w, "Size:       %d\n", e.Size)
	fmt.Fprintf(w, "Sender:     <%s>\n", e.From)
	client := e.ClientIP
	if e.Helo != "" {
		client += " (helo " + e.Helo + ")"
	}
	if e.AuthUser != "" {
		client += ", authenticated as " + e.AuthUser
	}
	if client != "" {
		fmt.Fprintf(w, "Client:     %s\n", client)
	}
	var params []string
	if e.Body != "" {
		params = append(params, "BODY="+string(e.Body))
	}
	if e.SMTPUTF8 {
		params = append(params, "SMTPUTF8")
	}
	if e.RequireTLS {
		params = append(params, "REQUIRETLS")
	}
	if e.Ret != "" {
		params = append(params, "RET="+e.Ret)
	}
	if e.EnvID != "" {
		params = append(params, "ENVID="+e.EnvID)
	}
	if len(params) > 0 {
		fmt.Fprintf(w, "Parameters: %s\n", strings.Join(params, " "))
	}
	fmt.Fprintln(w, "Recipients:")
	for _, r := range e.Rcpts {
		st := string(r.Status)
		if st == "" {
			st = "pending"
		}
		line := fmt.Sprintf("  %-32s %-9s", "<"+r.Addr+">", st)
		if len(r.Notify) > 0 {
			line += " NOTIFY=" + strings.Join(r.Notify, ",")
		}
		if r.LastError != "" {
			line += "  " + r.LastError
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if headers != "" {
		fmt.Fprintln(w, "Headers:")
		for _, l := range strings.SplitAfter(strings.ReplaceAll(headers, "\r\n", "\n"), "\n") {
			if l != "" {
				fmt.Fprint(w, "  "+l)
			}
		}
	}
}

func sender(from string) string {
	if from == "" {
		return "MAILER-DAEMON"
	}
	return from
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
