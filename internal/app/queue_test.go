package app

import (
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
		printItem(&b, tc.it, "")
		if line := strings.Split(b.String(), "\n")[1]; line != "Status:     "+tc.want {
			t.Errorf("%q, want Status: %s", line, tc.want)
		}
	}
}
