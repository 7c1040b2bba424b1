package queue

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/dsn"
	"github.com/tern-mail/tern/internal/envelope"
)

// Reports and the outcomes they report are one record.
//
// A delivery report (a bounce, a delay notice, a success notice) is queued as a message whose
// record also carries the state update of the message it reports on: "recipients i, j of
// message X are now failed", or "X's sender was told of the delay". Replay applies that update
// with the report (replaySegment), so the report and the outcome it reports are one durable
// write, covered by one CRC: a crash at any point leaves both or neither. Two separate writes
// could not do that: with the outcome first, a crash between them leaves a failed recipient
// whose sender never hears; with the report first, one that is pending and bounced again when
// it is retried. A tombstone (Queue.void) voids the record whole, outcome included.
//
// When a report cannot be queued at all (its flush failed, the disk is full), its outcome is
// not recorded either: a bounced recipient stays pending and is tried again later (and
// bounced then), a delay notice is tried at the next attempt. Only a success notice gives way:
// its recipient is recorded delivered without it, since delivering the message again would be
// worse than the lost notice.
//
// Reports are queued while Close waits for the last attempts (newWriter; the committer runs
// until they are done), and not under the context of the attempt, which shutdown cancels.

// reportSet gathers, per action, the recipients an attempt must report on.
type reportSet map[dsn.Action][]reported

// reported is one recipient to report on: its index in the envelope and its DSN fields.
type reported struct {
	i    int
	rcpt dsn.Recipient
}

func (s *reportSet) add(a dsn.Action, i int, r dsn.Recipient) {
	if *s == nil {
		*s = make(reportSet)
	}
	(*s)[a] = append((*s)[a], reported{i, r})
}

// takeUpdates moves the updates of the recipients rs out of st into a state record of their own:
// the effects of the report on them.
func takeUpdates(st *stateRecord, rs []reported) stateRecord {
	want := make(map[int]bool, len(rs))
	for _, r := range rs {
		want[r.i] = true
	}
	eff := stateRecord{ID: st.ID}
	var keep []rcptUpdate
	for _, u := range st.Updates {
		if want[u.I] {
			eff.Updates = append(eff.Updates, u)
		} else {
			keep = append(keep, u)
		}
	}
	st.Updates = keep
	return eff
}

// reportRecipient describes one recipient's outcome for a DSN. Its texts come from the
// classified error, which is safe to show a sender (no local paths), never from the log detail.
func reportRecipient(r envelope.Recipient, a dsn.Action, o delivery.Outcome, at, retryUntil time.Time) dsn.Recipient {
	rc := dsn.Recipient{Final: r.Addr, Original: r.ORcpt, Action: a, LastAttempt: at, WillRetryUntil: retryUntil}
	if o.Err == nil {
		rc.Status, rc.RemoteMTA = "2.0.0", o.RemoteMTA
		return rc
	}
	f := delivery.Failure(o.Err)
	describeFailure(&rc, f)
	if a == dsn.Failed && strings.HasPrefix(rc.Status, "4.") {
		// A temporary error that ran out of time: the delivery time expired (RFC 3463 X.4.7),
		// unless it was a REQUIRETLS message that no host could take over the TLS it asks
		// for, which RFC 8689 §4.2.1 reports as such (X.7.30).
		rc.Status = "5.4.7"
		if f.Enhanced == delivery.EnhRequireTLSTemp {
			rc.Status = "5.7.30"
		}
		lead := "gave up: not delivered before the message expired"
		if f.Reply {
			rc.Note = lead
		} else {
			rc.Note = lead + "; last attempt: " + rc.Note
		}
	}
	return rc
}

// describeFailure fills in rc's Status and texts from f: a server's reply as its Reply (with
// the server as Remote-MTA), or else what tern found as its Note.
func describeFailure(rc *dsn.Recipient, f *envelope.Failure) {
	rc.Status = f.Enhanced
	if rc.Status == "" {
		rc.Status = "4.0.0"
		if f.Code >= 500 {
			rc.Status = "5.0.0"
		}
	}
	if f.Reply {
		rc.RemoteMTA, rc.Reply = f.RemoteMTA, strings.TrimSpace(strconv.Itoa(f.Code)+" "+f.Enhanced+" "+f.Text)
		return
	}
	rc.Note = f.Text
}

// adminReport describes a recipient that an administrator returned to its sender (tern queue
// bounce): that, and the last failed attempt, which is what the sender needs to know. It has
// no Last-Attempt-Date: returning the message is no attempt, and the last one's time is not kept.
func adminReport(r envelope.Recipient, why string) dsn.Recipient {
	rc := dsn.Recipient{Final: r.Addr, Original: r.ORcpt, Action: dsn.Failed}
	if r.LastFailure == nil {
		rc.Status, rc.Note = "5.0.0", why
		return rc
	}
	describeFailure(&rc, r.LastFailure)
	if rc.Reply != "" {
		rc.Note = why
	} else {
		rc.Note = why + "; last attempt: " + rc.Note
	}
	rc.Status = "5.0.0"
	return rc
}

// queueReports queues the reports an attempt calls for, each carrying the updates of st for the
// recipients it reports on. It returns the effects of the reports queued (already durable) and
// the rest of st, to be recorded as a state record: the updates of recipients without a report,
// and those of reports that could not be queued (see the rules above).
func (q *Queue) queueReports(env *envelope.Envelope, src bodySource, st stateRecord, reports reportSet) (queued []stateRecord, rest stateRecord) {
	rest = st
	for _, a := range []dsn.Action{dsn.Failed, dsn.Delayed, dsn.Delivered, dsn.Relayed} {
		rs := reports[a]
		if len(rs) == 0 {
			continue
		}
		eff := takeUpdates(&rest, rs)
		eff.DelayNotified = a == dsn.Delayed
		if env.From == "" {
			q.log.Info("no report for a message from the null sender", "msgid", env.ID, "action", string(a))
			rest.Updates = append(rest.Updates, eff.Updates...)
			rest.DelayNotified = rest.DelayNotified || eff.DelayNotified
			continue
		}
		err := q.queueReport(env, src, a, rs, &eff)
		if err == nil {
			queued = append(queued, eff)
			continue
		}
		switch a {
		case dsn.Failed:
			q.log.Error("queue: cannot queue a bounce: its recipients stay queued and are tried again", "msgid", env.ID, "err", err)
			for _, u := range eff.Updates {
				rest.Updates = append(rest.Updates, rcptUpdate{I: u.I, Err: u.Err, F: u.F})
			}
		case dsn.Delayed:
			q.log.Error("queue: cannot queue a delay notice: it is tried again at the next attempt", "msgid", env.ID, "err", err)
			rest.Updates = append(rest.Updates, eff.Updates...)
		default:
			q.log.Error("queue: cannot queue a success notice: the sender will not get it", "msgid", env.ID, "action", string(a), "err", err)
			rest.Updates = append(rest.Updates, eff.Updates...)
		}
	}
	return queued, rest
}

// queueReport queues one report (see sendReport) and logs it.
func (q *Queue) queueReport(env *envelope.Envelope, src bodySource, a dsn.Action, rs []reported, effects *stateRecord) error {
	id, err := q.sendReport(env, src, a, rs, effects)
	if err == nil {
		q.log.Info("delivery report queued", "msgid", env.ID, "report", id, "action", string(a), "to", env.From, "nrcpt", len(rs))
	}
	return err
}

// sendReport queues one report, from the null sender so that a report can never cause another,
// with effects in its record. It returns the report's queue id.
func (q *Queue) sendReport(env *envelope.Envelope, src bodySource, a dsn.Action, rs []reported, effects *stateRecord) (string, error) {
	if env.From == "" {
		return "", errors.New("queue: no report for the null sender")
	}
	rcpts := make([]dsn.Recipient, len(rs))
	for k, r := range rs {
		rcpts[k] = r.rcpt
	}
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
	defer func() { _ = orig.Close() }() // only read: a failed Close loses nothing
	w := q.newWriter()
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
	if err := w.commit(renv, effects); err != nil {
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
