package proxied

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/tern-mail/tern/internal/testutil"
)

func listen(t *testing.T, trusted ...string) (*Listener, *testutil.SyncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	for _, s := range trusted {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	logs := &testutil.SyncBuffer{}
	l := Listen(ln, Options{Trusted: ps, Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { _ = l.Close() }) // best effort: the test is over
	return l, logs
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHeaders: v1 and v2 headers, as HAProxy's send-proxy and send-proxy-v2 write them, give
// the client's address; LOCAL gives the proxy's; what follows the header is read as sent.
func TestHeaders(t *testing.T) {
	l, _ := listen(t, "127.0.0.0/8")
	src := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	src6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40001}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 25}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 25}
	local := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	for _, tc := range []struct {
		name string
		h    *proxyproto.Header
		want string // "" : the proxy's own address
	}{
		{"v1 IPv4", proxyproto.HeaderProxyFromAddrs(1, src, dst), "192.0.2.7:40000"},
		{"v1 IPv6", proxyproto.HeaderProxyFromAddrs(1, src6, dst6), "[2001:db8::7]:40001"},
		{"v2 IPv4", proxyproto.HeaderProxyFromAddrs(2, src, dst), "192.0.2.7:40000"},
		{"v2 IPv6", proxyproto.HeaderProxyFromAddrs(2, src6, dst6), "[2001:db8::7]:40001"},
		{"v2 LOCAL", local, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, l)
			b, err := tc.h.Format()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(append(b, "EHLO x\r\n"...)); err != nil {
				t.Fatal(err)
			}
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			want := tc.want
			if want == "" {
				want = c.LocalAddr().String()
			}
			if got := sc.RemoteAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			line, err := bufio.NewReader(sc).ReadString('\n')
			if err != nil || line != "EHLO x\r\n" {
				t.Errorf("after the header: %q, %v", line, err)
			}
		})
	}
}

// TestUntrusted: a connection from outside proxy_from is closed before anything is read, and
// logged; a bad header closes the connection; neither holds up the next proxy.
func TestRefused(t *testing.T) {
	t.Run("untrusted", func(t *testing.T) {
		l, logs := listen(t, "10.0.0.0/8")
		c := dial(t, l)
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("read: %v", err)
		}
		if !strings.Contains(logs.String(), "not in proxy_from refused") {
			t.Errorf("log: %s", logs.String())
		}
	})
	t.Run("bad header, then a good one", func(t *testing.T) {
		l, logs := listen(t, "127.0.0.0/8")
		silent := dial(t, l) // sends nothing: must not hold up the others
		_ = silent
		bad := dial(t, l)
		if _, err := io.WriteString(bad, "EHLO x\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(bad); err != nil {
			t.Fatalf("read: %v", err)
		}
		acceptGood(t, l)
		if !strings.Contains(logs.String(), "bad header") {
			t.Errorf("log: %s", logs.String())
		}
	})
}

// acceptGood sends a good header on a new connection and checks that l accepts it with the
// client's address.
func acceptGood(t *testing.T, l *Listener) {
	t.Helper()
	good := dial(t, l)
	if _, err := io.WriteString(good, "PROXY TCP4 192.0.2.9 198.51.100.1 4000 25\r\n"); err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if got := sc.RemoteAddr().String(); got != "192.0.2.9:4000" {
		t.Errorf("RemoteAddr = %s, want the good connection's client", got)
	}
}

// FuzzReadHeader: no input panics the header reader, and whatever it accepts has an address.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.9 198.51.100.1 4000 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	if b, err := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 25}).Format(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		defer server.Close()
		go func() { _, _ = client.Write(in); client.Close() }()
		c, err := readHeader(&pipeConn{server}, time.Second)
		if err == nil && c.RemoteAddr() == nil {
			t.Fatal("accepted header without an address")
		}
	})
}

// pipeConn gives a pipe a TCP address, as the listener's connections have.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestCloseEndsPending: Close closes the connections whose header is awaited, and returns.
func TestCloseEndsPending(t *testing.T) {
	l, _ := listen(t, "127.0.0.0/8")
	silent := dial(t, l)
	for { // wait for the header reader to hold it
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("read: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

// panicFirst is a listener whose first connection panics when read: a bug in the header's
// parser, met by some input.
type panicFirst struct {
	net.Listener
	once sync.Once
}

func (p *panicFirst) Accept() (net.Conn, error) {
	c, err := p.Listener.Accept()
	var first net.Conn
	p.once.Do(func() { first = panicConn{c} })
	if err == nil && first != nil {
		return first, nil
	}
	return c, err
}

type panicConn struct{ net.Conn }

func (panicConn) Read([]byte) (int, error) { panic("parser bug") }

// TestHandshakePanic: a panic while reading a connection's header closes that connection and
// is logged with its stack; the listener goes on with the next.
func TestHandshakePanic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	l := Listen(&panicFirst{Listener: ln}, Options{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { _ = l.Close() })
	// The first connection sends nothing: its Read panics before reading, and octets left unread
	// in the socket would make the close a reset instead of the end of the stream.
	first := dial(t, l)
	if _, err := io.ReadAll(first); err != nil {
		t.Fatalf("read: %v", err)
	}
	acceptGood(t, l)
	if l := logs.String(); !strings.Contains(l, "panic reading the header") || !strings.Contains(l, "parser bug") || !strings.Contains(l, "goroutine") {
		t.Errorf("log: %s", l)
	}
}
