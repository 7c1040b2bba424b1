package app

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// QueueList prints the queue like Postfix's mailq: id, size, arrival and sender, then each
// recipient still pending, with the reason of its last failed attempt.
func QueueList(cfg config.Config, w io.Writer, log *slog.Logger) error {
	envs, err := queue.List(queuePath(cfg.Data), log)
	if err != nil {
		return err
	}
	if len(envs) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
		return nil
	}
	fmt.Fprintf(w, "%-16s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, e := range envs {
		from := e.From
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(w, "%-16s %8d %-20s %s\n", e.ID, e.Size, e.Received.Local().Format("Mon Jan _2 15:04:05"), from)
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
	fmt.Fprintf(w, "-- %d Kbytes in %d Request%s.\n", (total+1023)/1024, len(envs), plural(len(envs)))
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
