// Package proxied is a listener behind a load balancer: every connection starts with a PROXY
// protocol header (HAProxy's, version 1 or 2, read by github.com/pires/go-proxyproto), and the
// connection Accept returns reports the client the header names as its RemoteAddr, so that
// everything downstream (logs, Received, policy, rate limits, SPF) sees the real client.
//
// Only the trusted proxies may connect: a connection from any other address is closed at once
// and logged, before anything is read. The header is read in its own goroutine with a deadline,
// so a slow or silent proxy connection never holds up Accept.
package proxied

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// DefaultTimeout bounds the wait for the header.
const DefaultTimeout = 10 * time.Second

// Options configure a Listener.
type Options struct {
	// Trusted are the addresses of the proxies; no other may connect.
	Trusted []netip.Prefix
	// Timeout bounds the reading of the header. Default: DefaultTimeout.
	Timeout time.Duration
	// Logger gets a line per refused connection. Nil: discard.
	Logger *slog.Logger
}

// Listener wraps a net.Listener whose connections come through a proxy.
type Listener struct {
	net.Listener
	opts Options
	out  chan accepted
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose header is being read
	wg      sync.WaitGroup
}

type accepted struct {
	c   net.Conn
	err error
}

// Listen starts taking connections from ln; Close closes ln.
func Listen(ln net.Listener, opts Options) *Listener {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{Listener: ln, opts: opts, out: make(chan accepted), done: make(chan struct{}),
		pending: make(map[net.Conn]struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose header was read, with the client's address.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.out:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and the connections whose header is still awaited, and waits for
// the goroutines that read them.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		l.mu.Unlock()
		err = l.Listener.Close()
		l.mu.Lock()
		for c := range l.pending {
			_ = c.Close() // its reader returns at once
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// acceptLoop takes connections and hands each to its own header reader. An accept error goes
// to the caller of Accept, which waits before asking again (smtpserver backs off): the loop
// blocks until it is taken, so it never spins.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !l.deliver(accepted{err: err}) || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return
			}
			continue
		}
		if !l.trusted(c.RemoteAddr()) {
			l.opts.Logger.Warn("proxy protocol: connection from an address not in proxy_from refused",
				"remote", c.RemoteAddr().String(), "listen", l.Addr().String())
			_ = c.Close() // refused: nothing is owed to it
			continue
		}
		l.mu.Lock()
		select {
		case <-l.done: // Close ran between Accept and here: it did not see c
			l.mu.Unlock()
			_ = c.Close() // shutting down
			return
		default:
		}
		l.pending[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(c)
	}
}

// deliver hands a to Accept; false when the listener closed first.
func (l *Listener) deliver(a accepted) bool {
	select {
	case l.out <- a:
		return true
	case <-l.done:
		return false
	}
}

func (l *Listener) trusted(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	return slices.ContainsFunc(l.opts.Trusted, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// handshake reads the header of c and hands the connection on; a bad or late header closes it.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	pc, err := l.readHeaderSafely(c)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		l.opts.Logger.Warn("proxy protocol: bad header, connection closed", "proxy", c.RemoteAddr().String(), "err", err)
		_ = c.Close() // nothing to tell a proxy that sent no valid header
		return
	}
	if !l.deliver(accepted{c: pc}) {
		_ = c.Close() // shutting down
	}
}

// readHeaderSafely is readHeader with a panic turned into its error, logged with the stack: the
// header is parsed by a library, from the network, and a bug met there must close this
// connection, not the server.
func (l *Listener) readHeaderSafely(c net.Conn) (pc net.Conn, err error) {
	defer func() {
		if v := recover(); v != nil {
			l.opts.Logger.Error("proxy protocol: panic reading the header", "proxy", c.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
			pc, err = nil, fmt.Errorf("panic reading the header: %v", v)
		}
	}()
	return readHeader(c, l.opts.Timeout)
}

// readHeader reads the PROXY header from c within timeout and returns the connection as seen
// through it.
func readHeader(c net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	pc := &conn{Conn: c, r: br, remote: c.RemoteAddr()}
	// LOCAL (a health check of the proxy) and UNKNOWN carry no client: the proxy is the client.
	if src, _, ok := h.TCPAddrs(); ok && h.Command.IsProxy() {
		pc.remote = src
	}
	return pc, nil
}

// conn is a connection after its header: reads go through the buffer that read the header.
type conn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *conn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *conn) RemoteAddr() net.Addr       { return c.remote }
