package app

import (
	"encoding/json"
	"io"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// jsonMessage is one line of `tern queue list --json` and `tern queue show --json`. The first
// fields are postqueue -j's, with the same names and meanings, so that scripts written for
// Postfix's queue read tern's; the others are tern's own. Documented in docs/queue.md.
type jsonMessage struct {
	// QueueName is "hold" (held), "deferred" (waiting for its next attempt) or "active" (due,
	// or being delivered): the Postfix queue the message would be in.
	QueueName string `json:"queue_name"`
	QueueID   string `json:"queue_id"`
	// ArrivalTime is when the message was accepted, in seconds since the Unix epoch.
	ArrivalTime int64 `json:"arrival_time"`
	// MessageSize is the size of the message as queued, in octets (with tern's Received header).
	MessageSize int64 `json:"message_size"`
	// Sender is the envelope sender, "" for the null sender.
	Sender string `json:"sender"`
	// Recipients are the pending recipients (list), or all of them (show).
	Recipients []jsonRecipient `json:"recipients"`

	// Attempts counts the delivery attempts so far.
	Attempts int `json:"attempts"`
	// NextAttempt is when the next attempt is due, in seconds since the Unix epoch; absent
	// when due now, held or being delivered.
	NextAttempt int64 `json:"next_attempt,omitempty"`
	// Delivering is set while an attempt runs.
	Delivering bool `json:"delivering,omitempty"`
	// WaitingFor is the destination whose delivery slots are all taken while the message,
	// due, waits for one (queue.destination_concurrency).
	WaitingFor string `json:"waiting_for,omitempty"`

	// Show only: the submitting client, the MAIL FROM parameters, the header section.
	ClientIP   string `json:"client_ip,omitempty"`
	Helo       string `json:"helo,omitempty"`
	AuthUser   string `json:"auth_user,omitempty"`
	Body       string `json:"body,omitempty"`
	SMTPUTF8   bool   `json:"smtputf8,omitempty"`
	RequireTLS bool   `json:"requiretls,omitempty"`
	Ret        string `json:"ret,omitempty"`
	EnvID      string `json:"envid,omitempty"`
	Headers    string `json:"headers,omitempty"`
}

// jsonRecipient is one recipient of a jsonMessage.
type jsonRecipient struct {
	Address string `json:"address"`
	// DelayReason is why the last attempt failed (postqueue -j's delay_reason); absent before
	// any failed.
	DelayReason string `json:"delay_reason,omitempty"`
	// Status is "pending", "delivered" or "failed" (show only: list has only pending ones).
	Status string `json:"status,omitempty"`
	// Notify is the RFC 3461 NOTIFY list, when the client gave one (show only).
	Notify []string `json:"notify,omitempty"`
}

// printJSON prints items one JSON object a line; headers, when not nil, makes it show's form
// (headers[i] the header section of items[i]).
func printJSON(w io.Writer, items []queue.Item, headers []string) error {
	enc := json.NewEncoder(w)
	for i, it := range items {
		m := toJSON(it, headers != nil)
		if headers != nil {
			m.Headers = headers[i]
		}
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

func toJSON(it queue.Item, show bool) jsonMessage {
	e := it.Envelope
	m := jsonMessage{
		QueueName: "active", QueueID: e.ID, ArrivalTime: e.Received.Unix(), MessageSize: e.Size,
		Sender: e.From, Recipients: []jsonRecipient{}, Attempts: e.Attempts, Delivering: it.Busy,
		WaitingFor: it.WaitingFor,
	}
	switch {
	case e.Held:
		m.QueueName = "hold"
	case !it.Next.IsZero():
		m.QueueName = "deferred"
		m.NextAttempt = it.Next.Unix()
	}
	for _, r := range e.Rcpts {
		if r.Status != envelope.Pending && !show {
			continue
		}
		jr := jsonRecipient{Address: r.Addr, DelayReason: r.LastError}
		if show {
			jr.Status, jr.Notify = string(r.Status), r.Notify
			if r.Status == envelope.Pending {
				jr.Status = "pending"
			}
		}
		m.Recipients = append(m.Recipients, jr)
	}
	if show {
		m.ClientIP, m.Helo, m.AuthUser = e.ClientIP, e.Helo, e.AuthUser
		m.Body, m.SMTPUTF8, m.RequireTLS, m.Ret, m.EnvID = string(e.Body), e.SMTPUTF8, e.RequireTLS, e.Ret, e.EnvID
	}
	return m
}
