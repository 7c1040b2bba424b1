package app

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// TestPrintItemStatus: the Status line of tern queue show in each state a message can be in.
func TestPrintItemStatus(t *testing.T) {
	next := time.Date(2026, 11, 23, 20, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		it   queue.Item
		want string
	}{
		{queue.Item{}, "due for delivery"},
		{queue.Item{Busy: true}, "being delivered"},
		{queue.Item{Next: next, Envelope: &envelope.Envelope{Attempts: 2}}, "deferred until 2026-11-23 20:00:00 (after 2 attempts)"},
		{queue.Item{WaitingFor: "domain:slow.test"}, "due, waiting for one of the deliveries to domain:slow.test to end (queue.destination_concurrency)"},
	} {
		if tc.it.Envelope == nil {
			tc.it.Envelope = &envelope.Envelope{}
		}
		tc.it.Envelope.ID, tc.it.Envelope.From = "Q1", "a@example.test"
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		printItem(w, tc.it, "")
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if line := strings.Split(b.String(), "\n")[1]; line != "Status:     "+tc.want {
			t.Errorf("%q, want Status: %s", line, tc.want)
		}
	}
}

// TestQueueJSON: the objects of tern queue list/show --json, postqueue -j's fields first.
func TestQueueJSON(t *testing.T) {
	arrival := time.Unix(1764900000, 0)
	next := arrival.Add(time.Hour)
	env := func(held bool) *envelope.Envelope {
		return &envelope.Envelope{ID: "Q1", From: "a@example.test", Received: arrival, Size: 1234, Attempts: 2, Held: held,
			ClientIP: "192.0.2.1", Rcpts: []envelope.Recipient{
				{Addr: "b@example.org", LastError: "451 4.4.1 no answer", Notify: []string{"FAILURE"}},
				{Addr: "c@example.org", Status: envelope.Delivered},
			}}
	}
	for _, tc := range []struct {
		it      queue.Item
		headers []string
		want    string
	}{
		{queue.Item{Envelope: env(false), Next: next}, nil,
			`{"queue_name":"deferred","queue_id":"Q1","arrival_time":1764900000,"message_size":1234,"sender":"a@example.test",` +
				`"recipients":[{"address":"b@example.org","delay_reason":"451 4.4.1 no answer"}],"attempts":2,"next_attempt":1764903600}`},
		{queue.Item{Envelope: env(true)}, nil,
			`{"queue_name":"hold","queue_id":"Q1","arrival_time":1764900000,"message_size":1234,"sender":"a@example.test",` +
				`"recipients":[{"address":"b@example.org","delay_reason":"451 4.4.1 no answer"}],"attempts":2}`},
		{queue.Item{Envelope: env(false), Busy: true}, []string{"Subject: x\r\n"},
			`{"queue_name":"active","queue_id":"Q1","arrival_time":1764900000,"message_size":1234,"sender":"a@example.test",` +
				`"recipients":[{"address":"b@example.org","delay_reason":"451 4.4.1 no answer","status":"pending","notify":["FAILURE"]},` +
				`{"address":"c@example.org","status":"delivered"}],"attempts":2,"delivering":true,"client_ip":"192.0.2.1","headers":"Subject: x\r\n"}`},
		{queue.Item{Envelope: &envelope.Envelope{ID: "Q2", Received: arrival}}, nil,
			`{"queue_name":"active","queue_id":"Q2","arrival_time":1764900000,"message_size":0,"sender":"","recipients":[],"attempts":0}`},
	} {
		var b bytes.Buffer
		if err := printJSON(&b, []queue.Item{tc.it}, tc.headers); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != tc.want+"\n" {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
