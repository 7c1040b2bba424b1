package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is a DNS server on loopback (UDP and TCP, one port) serving fixed records, for tests
// that point tern's resolver at it. A name with records answers NOERROR (possibly with no
// record of the asked type), any other name NXDOMAIN; names marked secure get the AD bit, as
// from a validating resolver.
type DNS struct {
	Addr string // 127.0.0.1:port

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
	secure  map[string]bool
	rcode   map[string]int
	drop    map[string]bool
	queries map[string]int // "name TYPE" -> count
}

// StartDNS starts a DNS server with records rrs (see Add); it stops when the test ends.
func StartDNS(t testing.TB, rrs ...string) *DNS {
	t.Helper()
	z := &DNS{records: map[string][]dns.RR{}, secure: map[string]bool{}, rcode: map[string]int{}, drop: map[string]bool{}, queries: map[string]int{}}
	z.Add(t, rrs...)
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for try := 0; ; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close() // the port was no good: try another
		if try == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	z.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ActivateAndServe() // nil at Shutdown; a server that cannot start ends before started
		}()
		select {
		case <-started:
		case <-done:
			t.Fatal("the test DNS server did not start")
		}
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("test DNS server: %v", err)
			}
			<-done
		})
	}
	return z
}

// Add adds records in zone-file syntax ("mx.dest.test. A 127.0.0.1"; the TTL and class may be
// left out).
func (z *DNS) Add(t testing.TB, rrs ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad RR %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z.records[name] = append(z.records[name], rr)
	}
}

// Replace drops name's records and adds rrs (which may be none).
func (z *DNS) Replace(t testing.TB, name string, rrs ...string) {
	t.Helper()
	z.mu.Lock()
	delete(z.records, dns.Fqdn(strings.ToLower(name)))
	z.mu.Unlock()
	z.Add(t, rrs...)
}

// SetSecure gives the answers for names the AD bit.
func (z *DNS) SetSecure(names ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, n := range names {
		z.secure[dns.Fqdn(strings.ToLower(n))] = true
	}
}

// Fail makes every query for name answer rcode (dns.RcodeServerFailure, say).
func (z *DNS) Fail(name string, rcode int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rcode[dns.Fqdn(strings.ToLower(name))] = rcode
}

// Drop makes every query for name go unanswered, as from a server that times out.
func (z *DNS) Drop(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.drop[dns.Fqdn(strings.ToLower(name))] = true
}

// Count is how many queries name of type qtype got.
func (z *DNS) Count(name string, qtype uint16) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[dns.Fqdn(strings.ToLower(name))+" "+dns.TypeToString[qtype]]
}

// ServeDNS answers from the records.
func (z *DNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m) // a lost reply shows as the resolver timing out
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	z.mu.Lock()
	z.queries[name+" "+dns.TypeToString[q.Qtype]]++
	rc, failing := z.rcode[name]
	dropped := z.drop[name]
	rrs, exists := z.records[name]
	secure := z.secure[name]
	z.mu.Unlock()
	if dropped {
		return // counted, never answered
	}
	switch {
	case failing:
		m.Rcode = rc
	case !exists:
		m.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	m.AuthenticatedData = secure && !failing
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		// As a real server: what does not fit the client's UDP size is cut, with TC set,
		// and the client asks again over TCP.
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m) // a lost reply shows as the resolver timing out
}
