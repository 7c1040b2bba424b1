package remote

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
)

// TestHostStates: the life of a dead address, on a clock the test moves.
func TestHostStates(t *testing.T) {
	now := time.Unix(1e9, 0)
	s := newHostStates(30*time.Second, func() time.Time { return now })
	refused := &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoAnswer, Msg: "cannot connect to mx.example"}
	const a, b = "192.0.2.1:25", "192.0.2.2:25"
	step := func(what string, addr string, wantProbe, wantDead bool) bool {
		t.Helper()
		probe, err := s.admit(addr, "example.test")
		if probe != wantProbe || (err != nil) != wantDead {
			t.Fatalf("%s: admit(%s) = %v, %v; want probe %v, dead %v", what, addr, probe, err, wantProbe, wantDead)
		}
		if err != nil && (err.Permanent || !strings.HasPrefix(err.Msg, "delivery temporarily suspended: cannot connect")) {
			t.Fatalf("%s: error %+v", what, err)
		}
		return probe
	}
	step("never seen", a, false, false)
	s.done(a, "example.test", false, refused)
	step("just failed", a, false, true)
	step("another address", b, false, false)
	now = now.Add(29 * time.Second)
	step("within the TTL", a, false, true)
	now = now.Add(time.Second)
	p := step("TTL over: one probe", a, true, false)
	step("while the probe runs", a, false, true)
	s.done(a, "example.test", p, refused)
	step("probe failed: dead again", a, false, true)
	now = now.Add(30 * time.Second)
	p = step("next probe", a, true, false)
	s.done(a, "example.test", p, nil)
	step("probe got an answer: alive", a, false, false)
	step("and stays so", a, false, false)

	// A connection that started before the address was marked dead does not override the
	// probe's outcome.
	s.done(a, "example.test", false, refused)
	now = now.Add(30 * time.Second)
	p = step("probe", a, true, false)
	s.done(a, "example.test", false, refused) // the old connection fails late
	step("still probing", a, false, true)
	s.done(a, "example.test", p, nil)
	step("the probe decided", a, false, false)

	if newHostStates(-1, time.Now) != nil {
		t.Error("a negative TTL keeps state")
	}
	var off *hostStates
	if probe, err := off.admit(a, "example.test"); probe || err != nil {
		t.Error("a nil hostStates skips")
	}
}

// TestHostStatesForget: ETRN for a domain forgets only the addresses met dead for that domain
// (or its subdomains, with @domain); tern queue flush ("") forgets them all.
func TestHostStatesForget(t *testing.T) {
	refused := &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoAnswer, Msg: "cannot connect"}
	for _, tc := range []struct {
		name       string
		domain     string
		subdomains bool
		left       []string // addresses still dead afterwards
	}{
		{"one domain", "a.example", false, []string{"192.0.2.2:25", "192.0.2.3:25", "192.0.2.4:25"}},
		{"the shared server", "b.example", false, []string{"192.0.2.1:25", "192.0.2.4:25"}},
		{"subdomains", "c.example", true, []string{"192.0.2.1:25", "192.0.2.2:25", "192.0.2.4:25"}},
		{"not the subdomains", "c.example", false, []string{"192.0.2.1:25", "192.0.2.2:25", "192.0.2.3:25", "192.0.2.4:25"}},
		{"unknown domain", "z.example", true, []string{"192.0.2.1:25", "192.0.2.2:25", "192.0.2.3:25", "192.0.2.4:25"}},
		{"everything", "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1e9, 0)
			s := newHostStates(30*time.Second, func() time.Time { return now })
			s.done("192.0.2.1:25", "a.example", false, refused)
			s.done("192.0.2.2:25", "b.example", false, refused)
			s.done("192.0.2.3:25", "sub.c.example", false, refused)
			s.done("192.0.2.4:25", "d.example", false, refused)
			// A second domain meets 192.0.2.3 dead: it is that domain's too now.
			if _, err := s.admit("192.0.2.3:25", "b.example"); err == nil {
				t.Fatal("a dead address admitted")
			}
			if n := s.forget(tc.domain, tc.subdomains); n != 4-len(tc.left) {
				t.Errorf("forgot %d, want %d", n, 4-len(tc.left))
			}
			for _, addr := range []string{"192.0.2.1:25", "192.0.2.2:25", "192.0.2.3:25", "192.0.2.4:25"} {
				_, err := s.admit(addr, "x.example")
				if want := slices.Contains(tc.left, addr); (err != nil) != want {
					t.Errorf("%s dead: %v, want %v", addr, err != nil, want)
				}
			}
		})
	}
}

// TestForgetDeadHosts: the deliverer maps an ETRN domain to its IDNA form, and with a
// relayhost to the relayhost, whatever the domain.
func TestForgetDeadHosts(t *testing.T) {
	refused := &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoAnswer, Msg: "cannot connect"}
	d, err := New(Options{Hostname: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	d.hosts.done("192.0.2.1:25", "xn--bcher-kva.example", false, refused)
	d.hosts.done("192.0.2.2:25", "other.example", false, refused)
	if n := d.ForgetDeadHosts("Bücher.example", false); n != 1 {
		t.Errorf("ETRN Bücher.example forgot %d addresses, want 1", n)
	}
	if n := d.ForgetDeadHosts("", false); n != 1 {
		t.Errorf("flush of everything forgot %d addresses, want 1", n)
	}

	r, err := New(Options{Hostname: "mx.example.test", Relayhost: "Smarthost.example:587"})
	if err != nil {
		t.Fatal(err)
	}
	r.hosts.done("192.0.2.9:587", "smarthost.example", false, refused)
	if n := r.ForgetDeadHosts("anything.example", true); n != 1 {
		t.Errorf("ETRN with a relayhost forgot %d addresses, want the relayhost's 1", n)
	}
}

// mute accepts connections and never says a word: a server that hangs, or a firewall that
// drops what follows the handshake. Each connection it accepts is announced on accepted.
type mute struct {
	ln       net.Listener
	conns    atomic.Int32
	accepted chan struct{}
	mu       sync.Mutex
	open     []net.Conn
}

func startMute(t *testing.T, addr string) *mute {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m := &mute{ln: ln, accepted: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.mu.Lock()
			m.open = append(m.open, c)
			m.mu.Unlock()
			m.conns.Add(1)
			m.accepted <- struct{}{}
		}
	}()
	t.Cleanup(m.close)
	return m
}

// waitAccepted waits for the next connection.
func (m *mute) waitAccepted(t *testing.T) {
	t.Helper()
	select {
	case <-m.accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection to the mute server")
	}
}

// hangUp closes the connections accepted so far: the client waiting for a greeting sees the
// end of the stream.
func (m *mute) hangUp() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.open {
		c.Close()
	}
	m.open = nil
}

func (m *mute) close() {
	m.ln.Close()
	m.hangUp()
}

// TestDeadHost: a burst of messages to a server that does not answer costs one failed
// connection, not one per message; after the TTL one delivery probes while the others are
// deferred at once; the server back up, mail flows again. The server hangs until the test
// hangs up, so "at once" is an order of events: the others are deferred while the probe
// still waits for its greeting.
func TestDeadHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.first.Close()
	h.first = nil
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	addr := net.JoinHostPort("127.0.0.2", strconv.Itoa(h.port))
	m := startMute(t, addr)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	d := h.deliverer(func(o *Options) {
		o.Timeouts.Command = time.Minute // the greeting's wait: longer than the test
		o.DeadHostTTL = time.Minute
		o.Now = clock
	})
	deliver := func() delivery.Outcome { return deliverAll(d, newEnv("bob@dest.test"), testMessage)[0] }

	// The first message waits for the greeting until the server hangs up: the address is dead.
	first := make(chan delivery.Outcome)
	go func() { first <- deliver() }()
	m.waitAccepted(t)
	m.hangUp()
	checkOutcome(t, 0, <-first, "temp 451 4.4.1")
	for range 5 {
		o := deliver()
		checkOutcome(t, 0, o, "temp 451 4.4.1")
		if !strings.Contains(o.Err.Error(), "delivery temporarily suspended") {
			t.Errorf("error %v, want a suspended delivery", o.Err)
		}
	}
	if n := m.conns.Load(); n != 1 {
		t.Errorf("%d connections after 5 more messages within the TTL, want still 1", n)
	}

	// After the TTL: the first delivery probes; those started meanwhile are deferred at once.
	advance(time.Minute)
	probeDone := make(chan delivery.Outcome)
	go func() { probeDone <- deliver() }()
	m.waitAccepted(t)
	for range 4 {
		checkOutcome(t, 0, deliver(), "temp 451 4.4.1")
	}
	select {
	case o := <-probeDone:
		t.Fatalf("the probe ended (%v) before the server said a word", o.Err)
	default:
	}
	m.hangUp()
	checkOutcome(t, 0, <-probeDone, "temp 451 4.4.1")
	if n := m.conns.Load(); n != 2 {
		t.Errorf("%d connections after the probe and 4 more messages, want 2", n)
	}

	// The server is back: the next probe gets through, and then everything does.
	m.close()
	p := h.peer("127.0.0.2", okPeer("mx1.dest.test"))
	advance(time.Minute)
	checkOutcome(t, 0, deliver(), "ok")
	checkOutcome(t, 0, deliver(), "ok")
	wantTxns(t, p, 2)
}
