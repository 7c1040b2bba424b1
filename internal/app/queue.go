package app

import (
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

// QueueCommand runs a `tern queue` operation (see package admin) and prints its outcome. It asks
// the running server through its admin socket; with no server running it opens the queue itself
// (taking the data directory's lock, so the two can never both own it).
func QueueCommand(ctx context.Context, cfg config.Config, op, arg string, w io.Writer, log *slog.Logger) error {
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return err
	}
	req := admin.Request{Op: op, Arg: arg}
	rep, err := admin.Call(ctx, adminPath(data), req)
	running := err == nil
	switch {
	case running:
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		hostname := cfg.Hostname
		if hostname == "" {
			hostname = config.DefaultHostname() // as serve does
		}
		if rep, err = queueDirect(ctx, data, hostname, req, log); err != nil {
			var e *Error
			if errors.As(err, &e) {
				return err
			}
			return dataError(data, "cannot open the queue (the server is not running)", err)
		}
	default:
		return dataError(data, "cannot ask the running server", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	switch op {
	case admin.OpList:
		printList(w, rep.Items)
	case admin.OpShow:
		printItem(w, rep.Items[0], rep.Headers)
	case admin.OpFlush:
		fmt.Fprintf(w, "%d message(s) made due now\n", rep.N)
		if !running {
			fmt.Fprintln(w, "note: the server is not running; they are delivered when it starts")
		}
	default:
		fmt.Fprintf(w, "%s: %s\n", arg, map[string]string{
			admin.OpHold: "held", admin.OpRelease: "released", admin.OpDelete: "deleted",
			admin.OpBounce: "returned to sender",
		}[op])
	}
	return nil
}

// queueDirect runs req on the queue with the server stopped. hostname is the server's: the
// Reporting-MTA and sender domain of the report a bounce writes.
func queueDirect(ctx context.Context, data, hostname string, req admin.Request, log *slog.Logger) (admin.Reply, error) {
	if req.Op == admin.OpList {
		// Listing reads the log without writing, so it needs no lock.
		envs, err := queue.List(queuePath(data), log)
		if err != nil {
			return admin.Reply{}, err
		}
		items := make([]queue.Item, len(envs))
		now := time.Now()
		for i, e := range envs {
			items[i] = queue.Item{Envelope: e}
			if !e.Held && e.NextAttempt.After(now) {
				items[i].Next = e.NextAttempt
			}
		}
		return admin.Reply{Items: items}, nil
	}
	unlock, err := lockData(data)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return admin.Reply{}, err
		}
		return admin.Reply{}, errorf(err, "%v (is a server running without its admin socket?)", err)
	}
	defer unlock()
	q, err := queue.Open(queuePath(data), queue.Options{Hostname: hostname, Logger: log})
	if err != nil {
		return admin.Reply{}, err
	}
	defer q.Close()
	return admin.Handle(ctx, q, req), nil
}

// QueueList prints the queue like Postfix's mailq.
func QueueList(cfg config.Config, w io.Writer, log *slog.Logger) error {
	return QueueCommand(context.Background(), cfg, admin.OpList, "", w, log)
}

// printList prints items like Postfix's mailq: id (with "!" when held, "*" while being
// delivered), size, arrival and sender, then each pending recipient with the reason of its last
// failed attempt.
func printList(w io.Writer, items []queue.Item) {
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
func printItem(w io.Writer, it queue.Item, headers string) {
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
