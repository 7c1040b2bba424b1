package smtpserver

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/spf"
	"github.com/tern-mail/tern/internal/testutil"
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
	b.Run("connection-per-message", func(b *testing.B) {
		ts := newTestServer(b, nil)
		b.ReportAllocs()
		for b.Loop() {
			c := dialBench(b, ts)
			c.message("a@b.example", body)
			c.cmd("QUIT\r\n", '2')
			c.conn.Close()
		}
	})
	b.Run("one-connection", func(b *testing.B) {
		ts := newTestServer(b, nil)
		c := dialBench(b, ts)
		defer c.conn.Close()
		b.ReportAllocs()
		for b.Loop() {
			c.message("a@b.example", body)
		}
	})
}

// dialBench connects to ts's MX listener and says EHLO.
func dialBench(b *testing.B, ts *testServer) *benchClient {
	conn, err := net.Dial("tcp", ts.addrs[RoleMX])
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{b: b, conn: conn, r: bufio.NewReader(conn)}
	c.expect('2')
	c.cmd("EHLO bench.example\r\n", '2')
	return c
}

// message sends one message from from to bob by DATA; body ends with the final dot.
func (c *benchClient) message(from, body string) {
	c.cmd("MAIL FROM:<"+from+">\r\n", '2')
	c.cmd("RCPT TO:<bob@example.test>\r\n", '2')
	c.cmd("DATA\r\n", '3')
	c.cmd(body, '2')
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

// nxDKIM answers every DKIM key lookup with no record.
type nxDKIM struct{}

func (nxDKIM) LookupTXT(context.Context, string) ([]string, error) { return nil, nil }

// BenchmarkJudged5KB is BenchmarkSession5KB/one-connection with the checks of mail from other
// servers on: the real SPF, DKIM and DMARC code over a zone with DMARC records and nothing else
// (dmarcZone), as a server whose resolver answers from its cache. Over one connection, and
// over 10 per CPU at once. It reports the CPU time of client and server: what the server
// saves shows there, not in the wall time of a client that waits for each reply.
func BenchmarkJudged5KB(b *testing.B) {
	body := "From: <a@none.test>\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70) + ".\r\n"
	start := func(b *testing.B) *testServer {
		b.ReportAllocs()
		return newTestServer(b, func(o *Options) {
			o.Authentication = &Authentication{SPF: spf.New(dmarcZone{}, 0), DKIM: dkim.Verifier{Resolver: nxDKIM{}},
				DMARC: &dmarc.Checker{Resolver: dmarcZone{}}, Policy: policy.Inbound{Check: true}}
		})
	}
	b.Run("one-connection", func(b *testing.B) {
		c := dialBench(b, start(b))
		defer c.conn.Close()
		cpu0 := testutil.CPUTime(b)
		for b.Loop() {
			c.message("a@none.test", body)
		}
		testutil.ReportCPUPerOp(b, cpu0)
	})
	b.Run("parallel", func(b *testing.B) {
		ts := start(b)
		b.SetParallelism(10)
		cpu0 := testutil.CPUTime(b)
		b.RunParallel(func(pb *testing.PB) {
			c := dialBench(b, ts)
			defer c.conn.Close()
			for pb.Next() {
				c.message("a@none.test", body)
			}
		})
		testutil.ReportCPUPerOp(b, cpu0)
	})
}
