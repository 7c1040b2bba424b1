package smtpserver

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
)

// benchClient is a client that waits for each reply before its next command, as Postfix's
// smtp-source does: every command is a wait for the client, on the server's side too.
type benchClient struct {
	b    *testing.B
	conn net.Conn
	r    *bufio.Reader
}

func (c *benchClient) expect(code byte) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.b.Fatal(err)
		}
		if line[0] != code {
			c.b.Fatalf("reply %q", line)
		}
		if len(line) < 4 || line[3] != '-' {
			return
		}
	}
}

func (c *benchClient) cmd(line string, code byte) {
	if _, err := io.WriteString(c.conn, line); err != nil {
		c.b.Fatal(err)
	}
	c.expect(code)
}

// A 5 KB message by DATA, one command at a time: over a connection of its own per message
// (smtp-source without -d: the greeting, EHLO and QUIT are part of each), and over one
// connection for all of them (smtp-source -d).
func BenchmarkSession5KB(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70) + ".\r\n"
	message := func(c *benchClient) {
		c.cmd("MAIL FROM:<a@b.example>\r\n", '2')
		c.cmd("RCPT TO:<bob@example.test>\r\n", '2')
		c.cmd("DATA\r\n", '3')
		c.cmd(body, '2')
	}
	dial := func(b *testing.B, ts *testServer) *benchClient {
		conn, err := net.Dial("tcp", ts.addrs[RoleMX])
		if err != nil {
			b.Fatal(err)
		}
		c := &benchClient{b: b, conn: conn, r: bufio.NewReader(conn)}
		c.expect('2')
		c.cmd("EHLO bench.example\r\n", '2')
		return c
	}
	b.Run("connection-per-message", func(b *testing.B) {
		ts := newTestServer(b, nil)
		b.ReportAllocs()
		for b.Loop() {
			c := dial(b, ts)
			message(c)
			c.cmd("QUIT\r\n", '2')
			c.conn.Close()
		}
	})
	b.Run("one-connection", func(b *testing.B) {
		ts := newTestServer(b, nil)
		c := dial(b, ts)
		defer c.conn.Close()
		b.ReportAllocs()
		for b.Loop() {
			message(c)
		}
	})
}

// BenchmarkIdleSession is the memory an idle session holds (greeted, EHLO answered, waiting for
// its next command): heap and goroutine stacks in use after a collection, per session, with the
// client's side of the connection (a net.Conn, no goroutine) included. Run it with a fixed
// count, e.g. -benchtime=2000x; scripts/idle-sessions.sh measures a whole tern serve.
func BenchmarkIdleSession(b *testing.B) {
	ts := newTestServer(b, func(o *Options) { o.Logger = nil }) // the test log would hold every line
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]*benchClient, 0, b.N)
	for range b.N {
		conn, err := net.Dial("tcp", ts.addrs[RoleMX])
		if err != nil {
			b.Fatal(err)
		}
		c := &benchClient{b: b, conn: conn, r: bufio.NewReaderSize(conn, 16)}
		c.expect('2')
		c.cmd("EHLO idle.example\r\n", '2')
		c.r = nil // the client keeps nothing but the connection
		conns = append(conns, c)
	}
	// The last session may not be waiting yet; a NOOP on each shows they all came back to
	// their wait, and is answered from the idle wait's own buffer.
	for _, c := range conns {
		c.r = bufio.NewReaderSize(c.conn, 16)
		c.cmd("NOOP\r\n", '2')
		c.r = nil
	}
	runtime.GC()
	runtime.GC() // a second one frees what the first one's sweep found, and shrinks stacks
	runtime.ReadMemStats(&after)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/session")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/session")
	for _, c := range conns {
		c.conn.Close()
	}
}
