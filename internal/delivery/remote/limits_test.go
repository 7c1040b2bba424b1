package remote

import (
	"fmt"
	"slices"
	"testing"
)

// TestRecipientLimits: many recipients of one domain go in several transactions on one
// connection: at most 100 or the server's LIMITS RCPTMAX at a time, and those a server refused
// with "452 4.5.3 too many recipients" again in the next transaction, not an hour later.
func TestRecipientLimits(t *testing.T) {
	t.Parallel()
	rcpts := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("r%d@dest.test", i))
		}
		return out
	}
	tests := []struct {
		name   string
		peer   *peer
		rcpts  []string
		want   func(i int) string // outcome of recipient i
		txns   []int              // recipients in each transaction the peer completed
		nconns int
	}{{
		name:   "452 4.5.3: the rest in the next transaction",
		peer:   &peer{rcptMax: 2},
		rcpts:  rcpts(5),
		want:   func(int) string { return "ok" },
		txns:   []int{2, 2, 1},
		nconns: 1,
	}, {
		name:   "LIMITS RCPTMAX (RFC 9422): no more are sent",
		peer:   &peer{ext: []string{"PIPELINING", "LIMITS RCPTMAX=2 MAILMAX=10"}},
		rcpts:  rcpts(5),
		want:   func(int) string { return "ok" },
		txns:   []int{2, 2, 1},
		nconns: 1,
	}, {
		name:   "100 at a time",
		peer:   &peer{ext: []string{"PIPELINING"}},
		rcpts:  rcpts(250),
		want:   func(int) string { return "ok" },
		txns:   []int{100, 100, 50},
		nconns: 1,
	}, {
		name: "another 452 waits for the next attempt",
		peer: &peer{rcpt: func(addr string) string {
			if addr == "r1@dest.test" {
				return "452 4.2.2 Mailbox full"
			}
			return ""
		}},
		rcpts: rcpts(3),
		want: func(i int) string {
			if i == 1 {
				return "temp 452 4.2.2"
			}
			return "ok"
		},
		txns:   []int{2},
		nconns: 1,
	}, {
		name:   "too many and nobody taken: no loop",
		peer:   &peer{rcpt: func(string) string { return "452 4.5.3 Too many recipients" }},
		rcpts:  rcpts(3),
		want:   func(int) string { return "temp 452 4.5.3" },
		nconns: 1,
	}, {
		name:   "connection lost at the second transaction: the first stays delivered",
		peer:   &peer{rcptMax: 2, hangupTx: 2},
		rcpts:  rcpts(5),
		want:   func(i int) string { return map[bool]string{true: "ok", false: "temp"}[i < 2] },
		txns:   []int{2},
		nconns: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			tc.peer.name = "mx1.dest.test"
			p := h.peer("127.0.0.2", tc.peer)
			d := h.deliverer(nil)
			out := deliverAll(d, newEnv(tc.rcpts...), testMessage)
			for i, o := range out {
				checkOutcome(t, i, o, tc.want(i))
			}
			var got []int
			for _, tx := range p.transactions() {
				got = append(got, len(tx.rcpts))
			}
			if !slices.Equal(got, tc.txns) {
				t.Errorf("transactions with %v recipients, want %v", got, tc.txns)
			}
			if conns := p.connections(); conns != tc.nconns {
				t.Errorf("%d connections, want %d", conns, tc.nconns)
			}
		})
	}
}
