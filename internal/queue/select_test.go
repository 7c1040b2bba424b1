package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

func TestSelectionMatch(t *testing.T) {
	later := time.Now().Add(time.Hour)
	msg := func(from string, held, busy bool, next time.Time, rcpts ...envelope.Recipient) Item {
		return Item{Envelope: &envelope.Envelope{From: from, Held: held, Rcpts: rcpts}, Busy: busy, Next: next}
	}
	pending := func(a string) envelope.Recipient { return envelope.Recipient{Addr: a} }
	done := func(a string) envelope.Recipient { return envelope.Recipient{Addr: a, Status: envelope.Delivered} }
	var (
		deferred = msg("alice@a.example", false, false, later, pending("bob@b.example"), done("carol@c.example"))
		held     = msg("alice@a.example", true, false, time.Time{}, pending("Bob@B.example"))
		due      = msg("", false, false, time.Time{}, pending("dave@sub.b.example"))
		busy     = msg("eve@a.example", false, true, time.Time{}, pending("bob@b.example"))
	)
	all := map[string]Item{"deferred": deferred, "held": held, "due": due, "busy": busy}
	for _, tc := range []struct {
		sel  Selection
		want []string // the names of all that match
	}{
		{Selection{}, []string{"busy", "deferred", "due", "held"}},
		{Selection{From: "alice@a.example"}, []string{"deferred", "held"}},
		{Selection{From: "ALICE@A.example"}, []string{"deferred", "held"}},
		{Selection{From: "@a.example"}, []string{"busy", "deferred", "held"}},
		{Selection{From: "<>"}, []string{"due"}},
		{Selection{To: "bob@b.example"}, []string{"busy", "deferred", "held"}},
		{Selection{To: "carol@c.example"}, nil}, // delivered already
		{Selection{To: "@b.example"}, []string{"busy", "deferred", "held"}},
		{Selection{Domain: "b.example"}, []string{"busy", "deferred", "held"}},
		{Selection{Domain: "B.EXAMPLE."}, []string{"busy", "deferred", "held"}},
		{Selection{Domain: "sub.b.example"}, []string{"due"}},
		{Selection{Held: true}, []string{"held"}},
		{Selection{Deferred: true}, []string{"deferred"}},
		{Selection{Held: true, From: "eve@a.example"}, nil},
		{Selection{To: "bob@b.example", Domain: "c.example"}, nil}, // both on one recipient
		{Selection{From: "alice@a.example", Deferred: true, Domain: "b.example"}, []string{"deferred"}},
	} {
		var got []string
		for name, it := range all {
			if tc.sel.Match(it) {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v matches %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestSelectionCheck(t *testing.T) {
	for _, tc := range []struct {
		sel Selection
		ok  bool
	}{
		{Selection{}, true},
		{Selection{From: "<>", To: "@b.example", Domain: "b.example", Held: true}, true},
		{Selection{Held: true, Deferred: true}, false},
		{Selection{From: "alice"}, false},
		{Selection{To: "b.example"}, false},
		{Selection{Domain: "@b.example"}, false},
		{Selection{To: "<>"}, false},
	} {
		if err := tc.sel.Check(); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrSelection) {
			t.Errorf("Check(%+v) = %v", tc.sel, err)
		}
	}
}

// TestSelect selects on a real queue: a held message, and a deferred one for another domain.
func TestSelect(t *testing.T) {
	f := &fakeBatch{}
	q := openQueue(t, t.TempDir(), batchOpts(f))
	a := commitMsg(t, q, newEnv("x@one.example"), []byte("x\r\n"))
	b := commitMsg(t, q, newEnv("y@two.example", "z@one.example"), []byte("y\r\n"))
	if err := q.Hold(a); err != nil {
		t.Fatal(err)
	}
	ids := func(items []Item) []string {
		var s []string
		for _, it := range items {
			s = append(s, it.Envelope.ID)
		}
		return s
	}
	for _, tc := range []struct {
		sel  Selection
		want []string
	}{
		{Selection{}, []string{a, b}},
		{Selection{Held: true}, []string{a}},
		{Selection{Domain: "one.example"}, []string{a, b}},
		{Selection{To: "y@two.example"}, []string{b}},
		{Selection{From: "nobody@example.org"}, nil},
	} {
		if got := ids(q.Select(tc.sel)); !slices.Equal(got, tc.want) {
			t.Errorf("Select(%+v) = %v, want %v", tc.sel, got, tc.want)
		}
	}
	// What Select returns is a copy: changing it changes nothing queued.
	q.Select(Selection{})[0].Envelope.Rcpts[0].Addr = "changed@example"
	if it, _ := q.Show(a); it.Envelope.Rcpts[0].Addr != "x@one.example" {
		t.Errorf("Select shared the queue's envelope: %+v", it.Envelope.Rcpts)
	}
}

// FuzzSelection: any flags and addresses are checked and matched without panic, and a
// selection that passes Check and names a message's own sender and recipient selects it.
func FuzzSelection(f *testing.F) {
	f.Add("alice@a.example", "@b.example", "b.example", "alice@a.example", "bob@b.example")
	f.Add("<>", "bob", "@", "", "@")
	f.Fuzz(func(t *testing.T, from, to, domain, sender, rcpt string) {
		it := Item{Envelope: &envelope.Envelope{From: sender, Rcpts: []envelope.Recipient{{Addr: rcpt}}}}
		s := Selection{From: from, To: to, Domain: domain}
		_ = s.Check()
		_ = s.Match(it)
		own := Selection{From: sender, To: rcpt}
		if sender == "" {
			own.From = "<>"
		}
		// An address as the queue holds them has its local part before the @ (an "@domain"
		// selects a domain).
		local := !strings.HasPrefix(sender, "@") && !strings.HasPrefix(rcpt, "@")
		if local && own.Check() == nil && !own.Match(it) {
			t.Errorf("%+v does not select its own message", own)
		}
	})
}
