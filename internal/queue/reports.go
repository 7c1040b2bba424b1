package queue

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/dsn"
	"github.com/tern-mail/tern/internal/envelope"
)

// reportSet gathers, per action, the recipients an attempt must report on.
type reportSet map[dsn.Action][]dsn.Recipient

func (s *reportSet) add(a dsn.Action, r dsn.Recipient) {
	if *s == nil {
		*s = make(reportSet)
	}
	(*s)[a] = append((*s)[a], r)
}

// reportRecipient describes one recipient's outcome for a DSN. Its texts come from the
// classified error, which is safe to show a sender (no local paths), never from the log detail.
func reportRecipient(r envelope.Recipient, a dsn.Action, o delivery.Outcome, at, retryUntil time.Time) dsn.Recipient {
	rc := dsn.Recipient{Final: r.Addr, Original: r.ORcpt, Action: a, RemoteMTA: o.RemoteMTA, LastAttempt: at, WillRetryUntil: retryUntil}
	var de *delivery.Error
	switch {
	case o.Err == nil:
		rc.Status = "2.0.0"
	case errors.As(o.Err, &de):
		rc.Status = de.Enhanced
		rc.Diagnostic = strconv.Itoa(de.Code) + " " + de.Enhanced + " " + de.Msg
	default:
		rc.Status = "4.0.0"
		rc.Diagnostic = "451 4.0.0 delivery failed"
	}
	if a == dsn.Failed && rc.Status != "" && rc.Status[0] == '4' {
		// A temporary error that ran out of time: the delivery time expired (RFC 3463 X.4.7).
		rc.Status = "5.4.7"
	}
	if rc.Status == "" {
		rc.Status = map[dsn.Action]string{dsn.Failed: "5.0.0", dsn.Delayed: "4.0.0"}[a]
	}
	return rc
}

// sendReports queues the delivery reports an attempt produced, from the null sender so that a
// report can never cause another. A message from the null sender gets none.
func (q *Queue) sendReports(ctx context.Context, env *envelope.Envelope, src bodySource, reports reportSet) {
	for _, a := range []dsn.Action{dsn.Failed, dsn.Delayed, dsn.Delivered, dsn.Relayed} {
		rcpts := reports[a]
		if len(rcpts) == 0 {
			continue
		}
		if env.From == "" {
			q.log.Info("no report for a message from the null sender", "msgid", env.ID, "action", string(a))
			continue
		}
		id, err := q.sendReport(ctx, env, src, a, rcpts)
		if err != nil {
			q.log.Error("queue: cannot queue a delivery report", "msgid", env.ID, "action", string(a), "err", err)
			continue
		}
		q.log.Info("delivery report queued", "msgid", env.ID, "report", id, "action", string(a), "to", env.From, "nrcpt", len(rcpts))
	}
}

func (q *Queue) sendReport(ctx context.Context, env *envelope.Envelope, src bodySource, a dsn.Action, rcpts []dsn.Recipient) (string, error) {
	rep := &dsn.Report{
		ReportingMTA: q.opts.Hostname,
		QueueID:      env.ID,
		EnvID:        env.EnvID,
		Arrival:      env.Received,
		To:           env.From,
		Recipients:   rcpts,
		Ret:          env.Ret,
		Now:          q.opts.Now(),
	}
	if a != dsn.Failed {
		rep.Ret = "HDRS" // only a failure returns the message itself
	}
	orig, err := (queueBody{q: q, src: src, id: env.ID}).Open()
	if err != nil {
		return "", err
	}
	defer orig.Close()
	w, err := q.NewMessage()
	if err != nil {
		return "", err
	}
	cw := &countWriter{w: w}
	if err := rep.Write(cw, orig); err != nil {
		w.Abort()
		return "", err
	}
	renv := &envelope.Envelope{
		Rcpts:    []envelope.Recipient{{Addr: env.From}},
		Received: q.opts.Now(),
		Size:     cw.n,
		Body:     envelope.Body8BitMIME, // the report may quote UTF-8 addresses and replies
		SMTPUTF8: env.SMTPUTF8,
	}
	if err := w.Commit(ctx, renv); err != nil {
		return "", err
	}
	return renv.ID, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
