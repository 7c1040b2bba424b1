package remote

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
)

// routeCase is one delivery scenario: DNS and peers set up by setup (which may return more
// checks), the recipients, and one expected outcome per recipient (see checkOutcome).
type routeCase struct {
	name   string
	rcpts  []string
	opts   func(h *harness, o *Options)
	setup  func(h *harness) func(t *testing.T, out []delivery.Outcome)
	want   []string
	remote string // RemoteMTA of the first outcome, if set
}

func runRouteCases(t *testing.T, tests []routeCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			var check func(*testing.T, []delivery.Outcome)
			if tc.setup != nil {
				check = tc.setup(h)
			}
			d := h.deliverer(func(o *Options) {
				if tc.opts != nil {
					tc.opts(h, o)
				}
			})
			rcpts := tc.rcpts
			if rcpts == nil {
				rcpts = []string{"bob@dest.test"}
			}
			out := deliverAll(d, newEnv(rcpts...), testMessage)
			if len(out) != len(tc.want) {
				t.Fatalf("got %d outcomes, want %d", len(out), len(tc.want))
			}
			for i, w := range tc.want {
				checkOutcome(t, i, out[i], w)
			}
			if tc.remote != "" && out[0].RemoteMTA != tc.remote {
				t.Errorf("RemoteMTA = %q, want %q", out[0].RemoteMTA, tc.remote)
			}
			if check != nil {
				check(t, out)
			}
		})
	}
}

// mx adds "dest.test MX pref name" and name's A record (addr "" for none).
func (h *harness) mx(domain string, pref int, name, addr string) {
	h.t.Helper()
	h.dns.Add(h.t, domain+". MX "+strconv.Itoa(pref)+" "+name+".")
	if addr != "" {
		h.dns.Add(h.t, name+". A "+addr)
	}
}

func okPeer(name string) *peer { return &peer{name: name} }

func wantTxns(t *testing.T, p *peer, n int) []*txn {
	t.Helper()
	got := p.transactions()
	if len(got) != n {
		t.Fatalf("%s: %d transactions, want %d", p.name, len(got), n)
	}
	return got
}

func TestRouting(t *testing.T) {
	t.Parallel()
	runRouteCases(t, []routeCase{{
		name: "lowest preference first",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			p1 := h.peer("127.0.0.2", okPeer("mx1.dest.test"))
			p2 := h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return func(t *testing.T, _ []delivery.Outcome) {
				wantTxns(t, p1, 1)
				wantTxns(t, p2, 0)
			}
		},
		want: []string{"ok"}, remote: "mx1.dest.test",
	}, {
		name: "first host down, second takes it",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.3") // nothing listens there
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", okPeer("mx2.dest.test"))
			return nil
		},
		want: []string{"ok"}, remote: "mx2.dest.test",
	}, {
		name: "implicit MX",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.dns.Add(h.t, "dest.test. A 127.0.0.2")
			h.peer("127.0.0.2", okPeer("dest.test"))
			return nil
		},
		want: []string{"ok"}, remote: "dest.test",
	}, {
		name:  "null MX fails every recipient",
		rcpts: []string{"bob@dest.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.dns.Add(h.t, "dest.test. MX 0 .")
			return nil
		},
		want: []string{"perm 556 5.1.10", "perm 556 5.1.10"},
	}, {
		name: "domain does not exist",
		want: []string{"perm 550 5.1.2"},
	}, {
		name: "DNS failure is temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.dns.Fail("dest.test", 2) // SERVFAIL
			return nil
		},
		want: []string{"temp 451 4.4.3"},
	}, {
		name: "all hosts down",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.3")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.4")
			return nil
		},
		want: []string{"temp 451 4.4.1"}, remote: "mx2.dest.test",
	}, {
		name: "MX host without an address",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "gone.dest.test", "")
			return nil
		},
		want: []string{"temp 451 4.4.4"},
	}, {
		name: "no MX and no address",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.dns.Add(h.t, `dest.test. TXT "v=spf1 -all"`)
			return nil
		},
		want: []string{"perm 550 5.4.4"},
	}, {
		name: "4xx greeting moves on",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", greeting: "421 4.3.2 busy"})
			h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return nil
		},
		want: []string{"ok"}, remote: "mx2.dest.test",
	}, {
		name: "5xx greeting of the only host",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", greeting: "554 5.7.1 go away"})
			return nil
		},
		want: []string{"perm 554 5.7.1"},
	}, {
		name: "5xx greeting, then a host that is down: temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", greeting: "554 5.7.1 go away"})
			return nil
		},
		want: []string{"temp 451 4.4.1"},
	}, {
		name:  "RCPT replies are per recipient, with the remote's reply as diagnostic",
		rcpts: []string{"bob@dest.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", rcpt: func(a string) string {
				if a == "bob@dest.test" {
					return "550 5.1.1 <bob@dest.test>: User unknown"
				}
				return ""
			}})
			return func(t *testing.T, out []delivery.Outcome) {
				de := out[0].Err.(*delivery.Error)
				if diag := strconv.Itoa(de.Code) + " " + de.Enhanced() + " " + de.Msg; diag != "550 5.1.1 <bob@dest.test>: User unknown" {
					t.Errorf("diagnostic %q", diag)
				}
				if de.RemoteMTA != "mx1.dest.test" || out[0].RemoteMTA != "mx1.dest.test" {
					t.Errorf("RemoteMTA %q / %q", de.RemoteMTA, out[0].RemoteMTA)
				}
				tx := wantTxns(t, p, 1)
				if len(tx[0].rcpts) != 1 || !strings.Contains(tx[0].rcpts[0], "carol@") {
					t.Errorf("rcpts %q", tx[0].rcpts)
				}
			}
		},
		want: []string{"perm 550 5.1.1", "ok"},
	}, {
		name:  "RCPT 4xx is tried at the next host",
		rcpts: []string{"bob@dest.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", rcpt: func(a string) string {
				if a == "bob@dest.test" {
					return "450 4.2.1 try later"
				}
				return ""
			}})
			p2 := h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return func(t *testing.T, out []delivery.Outcome) {
				tx := wantTxns(t, p2, 1)
				if len(tx[0].rcpts) != 1 || !strings.Contains(tx[0].rcpts[0], "bob@") {
					t.Errorf("mx2 rcpts %q", tx[0].rcpts)
				}
				if out[0].RemoteMTA != "mx2.dest.test" || out[1].RemoteMTA != "mx1.dest.test" {
					t.Errorf("RemoteMTA %q, %q", out[0].RemoteMTA, out[1].RemoteMTA)
				}
			}
		},
		want: []string{"ok", "ok"},
	}, {
		name: "RCPT 4xx everywhere is temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", rcpt: func(string) string { return "452 4.2.2 mailbox full" }})
			return nil
		},
		want: []string{"temp 452 4.2.2"}, remote: "mx1.dest.test",
	}, {
		name:  "MAIL 5xx fails every recipient",
		rcpts: []string{"bob@dest.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", mail: "550 5.7.1 sender refused"})
			p2 := h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return func(t *testing.T, _ []delivery.Outcome) { wantTxns(t, p2, 0) }
		},
		want: []string{"perm 550 5.7.1", "perm 550 5.7.1"},
	}, {
		name: "MAIL 4xx moves on",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", mail: "451 4.3.0 later"})
			h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return nil
		},
		want: []string{"ok"}, remote: "mx2.dest.test",
	}, {
		name:  "data 5xx fails the transaction",
		rcpts: []string{"bob@dest.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", data: "554 5.7.1 looks like spam"})
			return nil
		},
		want: []string{"perm 554 5.7.1", "perm 554 5.7.1"},
	}, {
		name: "data 4xx is temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", data: "451 4.3.0 disk trouble"})
			return nil
		},
		want: []string{"temp 451 4.3.0"},
	}, {
		name:  "recipients of two domains go to their own hosts",
		rcpts: []string{"bob@dest.test", "dave@other.test", "carol@dest.test"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx.dest.test", "127.0.0.2")
			h.mx("other.test", 10, "mx.other.test", "127.0.0.3")
			p1 := h.peer("127.0.0.2", okPeer("mx.dest.test"))
			p2 := h.peer("127.0.0.3", okPeer("mx.other.test"))
			return func(t *testing.T, out []delivery.Outcome) {
				if tx := wantTxns(t, p1, 1); len(tx[0].rcpts) != 2 {
					t.Errorf("dest.test rcpts %q", tx[0].rcpts)
				}
				wantTxns(t, p2, 1)
				if out[1].RemoteMTA != "mx.other.test" {
					t.Errorf("RemoteMTA %q", out[1].RemoteMTA)
				}
			}
		},
		want: []string{"ok", "ok", "ok"},
	}, {
		name: "IPv6",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.dns.Add(h.t, "dest.test. MX 10 mx6.dest.test.", "mx6.dest.test. AAAA ::1")
			h.peer("::1", okPeer("mx6.dest.test"))
			return nil
		},
		want: []string{"ok"}, remote: "mx6.dest.test",
	}, {
		name: "server hangs up after EHLO: temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", hangup: "EHLO"})
			return nil
		},
		want: []string{"temp 451 4.4.2"},
	}, {
		name: "server hangs up after the data: temporary",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", &peer{name: "mx1.dest.test", hangup: "DATA"})
			return nil
		},
		want: []string{"temp 451 4.4.2"},
	}, {
		name:  "address literal",
		rcpts: []string{"bob@[127.0.0.2]"},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.peer("127.0.0.2", okPeer("literal.test"))
			return nil
		},
		want: []string{"ok"},
	}})
}

func TestLoops(t *testing.T) {
	t.Parallel()
	runRouteCases(t, []routeCase{{
		name: "MX is our host name",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "tern.sender.test", "127.0.0.2")
			p := h.peer("127.0.0.2", okPeer("someone.else"))
			return func(t *testing.T, _ []delivery.Outcome) {
				if p.connections() != 0 {
					t.Errorf("connected to ourselves")
				}
			}
		},
		want: []string{"perm 554 5.4.6"},
	}, {
		name: "server greets with our name",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.peer("127.0.0.2", okPeer("tern.sender.test"))
			p2 := h.peer("127.0.0.3", okPeer("mx2.dest.test"))
			return func(t *testing.T, _ []delivery.Outcome) { wantTxns(t, p2, 0) }
		},
		want: []string{"perm 554 5.4.6"},
	}, {
		name: "MX on one of our listening addresses",
		opts: func(h *harness, o *Options) {
			o.LocalAddrs = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(h.port))}
		},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			return nil
		},
		want: []string{"perm 554 5.4.6"},
	}, {
		name: "the same address on another port is not us",
		opts: func(h *harness, o *Options) {
			o.LocalAddrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:1")}
		},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.peer("127.0.0.2", okPeer("mx1.dest.test"))
			return nil
		},
		want: []string{"ok"},
	}, {
		name: "an unspecified listening address covers loopback",
		opts: func(h *harness, o *Options) {
			o.LocalAddrs = []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(h.port))}
		},
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.1")
			return nil
		},
		want: []string{"perm 554 5.4.6"},
	}, {
		name: "we are a backup MX: only better hosts are tried",
		setup: func(h *harness) func(*testing.T, []delivery.Outcome) {
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			h.mx("dest.test", 20, "tern.sender.test", "127.0.0.3")
			h.mx("dest.test", 30, "mx3.dest.test", "127.0.0.4")
			p3 := h.peer("127.0.0.4", okPeer("mx3.dest.test"))
			return func(t *testing.T, _ []delivery.Outcome) {
				if p3.connections() != 0 {
					t.Errorf("tried a host of lower priority than ourselves")
				}
			}
		},
		want: []string{"temp 451 4.4.1"},
	}})
}

// SetSelf changes who tern is for the attempts after it (a reload): its host name and its
// listening addresses are then loops.
func TestSetSelf(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	p := h.peer("127.0.0.2", okPeer("mx1.dest.test"))
	d := h.deliverer(nil)
	checkOutcome(t, 0, deliverAll(d, newEnv("bob@dest.test"), testMessage)[0], "ok")
	if err := d.SetSelf("mx1.dest.test", nil); err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, 1, deliverAll(d, newEnv("bob@dest.test"), testMessage)[0], "perm 554 5.4.6")
	if err := d.SetSelf("tern.sender.test", []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(h.port))}); err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, 2, deliverAll(d, newEnv("bob@dest.test"), testMessage)[0], "perm 554 5.4.6")
	if err := d.SetSelf("two words", nil); err == nil {
		t.Error("SetSelf took a host name with a space")
	}
	if name, addrs := d.Self(); name != "tern.sender.test" || len(addrs) != 1 {
		t.Errorf("Self = %s %v after a refused SetSelf, want the one before", name, addrs)
	}
	wantTxns(t, p, 1)
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	p := h.peer("127.0.0.2", okPeer("mx1.dest.test"))
	d := h.deliverer(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := d.DeliverBatch(ctx, newEnv("bob@dest.test"), []int{0}, bytesBody(testMessage))
	checkOutcome(t, 0, out[0], "temp")
	wantTxns(t, p, 0)
}

// TestConcurrent delivers from several goroutines through one Deliverer (run with -race).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	h.dns.Add(t, `_mta-sts.dest.test. TXT "v=STSv1; id=1;"`)
	s := h.stsServer(enforcePolicy)
	p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", ext: []string{"PIPELINING", "8BITMIME"}, tls: tlsConfig(h.ca.issue(t, "mx1.dest.test"))})
	d := h.deliverer(func(o *Options) { o.HTTPClient = s.client(h) })
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := deliverAll(d, newEnv("bob@dest.test", "carol@dest.test"), testMessage); out[0].Err != nil || out[1].Err != nil {
				errs <- fmt.Errorf("%v / %v", out[0].Err, out[1].Err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantTxns(t, p, n)
	if s.count() > n {
		t.Errorf("%d policy fetches", s.count())
	}
}

// TestDNSTimeout: a resolver that never answers makes delivery temporary, not a bounce.
func TestDNSTimeout(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d, err := New(Options{Hostname: "tern.sender.test", Resolver: pc.LocalAddr().String(), Timeouts: Timeouts{DNS: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
	checkOutcome(t, 0, out[0], "temp 451 4.4.3")
}

// TestSystemResolver: without Options.Resolver, the servers come from resolv.conf (or
// loopback without one).
func TestSystemResolver(t *testing.T) {
	t.Parallel()
	d, err := New(Options{Hostname: "tern.sender.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.dns.c.Servers()) == 0 {
		t.Fatal("no DNS servers")
	}
	for _, s := range d.dns.c.Servers() {
		if _, _, err := net.SplitHostPort(s); err != nil {
			t.Errorf("server %q: %v", s, err)
		}
	}
}
