package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/testutil"
)

// countingDialer counts the writes on the connections it opens: pipelining shows as fewer.
type countingDialer struct{ writes atomic.Int64 }

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{c, &d.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// commandCount is how many latencies res has for cmd.
func commandCount(res *Result, cmd string) uint64 {
	for _, c := range res.Commands {
		if c.Command == cmd {
			return c.Count
		}
	}
	return 0
}

// Runs against tern's own SMTP server in the test: what the server committed is what the
// result counts, for each way of sending.
func TestRunAgainstServer(t *testing.T) {
	ts := newTestServer(t, nil)
	cases := []struct {
		name string
		o    Options
		// want: messages and recipients committed, connections, and commands with one
		// latency per message
		conns    func(n int64) bool
		commands []string
	}{
		{name: "a connection per message", o: Options{Sessions: 4, Messages: 40, Size: 5120},
			conns: func(n int64) bool { return n == 40 }, commands: []string{"CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "data-end", "QUIT"}},
		{name: "pipelined, reused, 2 recipients", o: Options{Sessions: 3, Messages: 30, Size: 1000, Recipients: 2, Pipeline: true, Reuse: true},
			conns: func(n int64) bool { return n >= 1 && n <= 3 }, commands: []string{"MAIL", "DATA", "data-end"}},
		{name: "one session, 100 KB", o: Options{Messages: 5, Size: 100 << 10, Reuse: true},
			conns: func(n int64) bool { return n == 1 }, commands: []string{"MAIL", "RCPT", "DATA", "data-end"}},
		{name: "STARTTLS and AUTH PLAIN on submission", o: Options{Sessions: 2, Messages: 6, StartTLS: true, Insecure: true,
			Auth: "plain", User: "bob@example.test", Password: "bobpw", From: "bob@example.test"},
			conns: func(n int64) bool { return n == 6 }, commands: []string{"STARTTLS", "AUTH", "MAIL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, rcptsBefore, _, _ := ts.spool.counts()
			o := c.o
			o.Server = ts.mx
			if o.Auth != "" {
				o.Server = ts.submission
			}
			o.To = []string{"bob@example.test"}
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			after, rcptsAfter, _, sizes := ts.spool.counts()
			want := int64(o.Messages)
			if res.Messages != want || res.Failed != 0 || int64(after-before) != want {
				t.Fatalf("sent %d, failed %d, server committed %d new; want %d: %+v", res.Messages, res.Failed, after-before, want, res.Errors)
			}
			if r := max(o.Recipients, 1); int64(rcptsAfter-rcptsBefore) != want*int64(r) || res.RecipientsAccepted != want*int64(r) {
				t.Errorf("recipients: server %d, result %d; want %d", rcptsAfter-rcptsBefore, res.RecipientsAccepted, want*int64(r))
			}
			if !c.conns(res.Connections) {
				t.Errorf("%d connections", res.Connections)
			}
			if res.Bytes != want*int64(res.Size) || len(sizes) > 4 {
				t.Errorf("bytes %d for %d messages of %d; sizes the server saw: %v", res.Bytes, want, res.Size, sizes)
			}
			for _, cmd := range c.commands {
				n := commandCount(res, cmd)
				if cmd == "CONNECT" || cmd == "STARTTLS" || cmd == "AUTH" || cmd == "QUIT" || cmd == "EHLO" {
					if n == 0 {
						t.Errorf("no latency for %s", cmd)
					}
					continue
				}
				if n != uint64(want) {
					t.Errorf("%d latencies for %s, want %d", n, cmd, want)
				}
			}
			if res.Latency.Count != uint64(want) || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
				t.Errorf("latency %+v", res.Latency)
			}
			var text strings.Builder
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"messages/s", "MB/s", "p99", "data-end", "errors      none"} {
				if !strings.Contains(text.String(), s) {
					t.Errorf("the summary lacks %q:\n%s", s, text.String())
				}
			}
		})
	}
	_, _, ids, _ := ts.spool.counts()
	if ids != 40+30+5+6 {
		t.Errorf("%d different Message-IDs, want one per message (%d)", ids, 40+30+5+6)
	}
}

// With --pipeline MAIL, RCPT and DATA go out in one write.
func TestPipelineWritesLess(t *testing.T) {
	ts := newTestServer(t, nil)
	writes := func(pipeline bool) int64 {
		d := &countingDialer{}
		res, err := Run(context.Background(), Options{Server: ts.mx, To: []string{"bob@example.test"}, Messages: 10, Size: 500,
			Recipients: 2, Reuse: true, Pipeline: pipeline, Dialer: d})
		if err != nil || res.Messages != 10 {
			t.Fatalf("pipeline %v: %v, %+v", pipeline, err, res)
		}
		return d.writes.Load()
	}
	one, piped := writes(false), writes(true)
	// Per message: MAIL, RCPT, RCPT, DATA, text, or MAIL+RCPT+RCPT+DATA, text.
	if piped+30 > one {
		t.Errorf("%d writes pipelined, %d one command at a time: want 3 fewer per message", piped, one)
	}
}

// Failures are counted by kind, with the server's reply code, and end no run early.
func TestRunErrors(t *testing.T) {
	ts := newTestServer(t, func(o *smtpserver.Options) { o.MaxRcpts, o.MaxMessageSize = 2, 10000 })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := closed.Addr().String()
	closed.Close()
	cases := []struct {
		name      string
		o         Options
		sent      int64
		failed    int64
		wantKinds map[string]int64
	}{
		{"every recipient refused", Options{Server: ts.mx, To: []string{"nobody@example.test"}, Messages: 8, Sessions: 2},
			0, 8, map[string]int64{"RCPT 550 5.1.1": 8}},
		{"one of two recipients refused", Options{Server: ts.mx, To: []string{"bob@example.test", "nobody@example.test"}, Recipients: 2, Messages: 5, Reuse: true},
			5, 0, map[string]int64{"RCPT 550 5.1.1": 5}},
		{"too many recipients, pipelined", Options{Server: ts.mx, To: []string{"bob@example.test", "carol@example.test"}, Recipients: 3, Messages: 4, Pipeline: true, Reuse: true},
			4, 0, map[string]int64{"RCPT 452 4.5.3": 4}},
		{"nobody listening", Options{Server: nowhere, Messages: 7, Sessions: 3},
			0, 7, map[string]int64{"CONNECT refused": 7}},
		{"wrong password", Options{Server: ts.submission, To: []string{"bob@example.test"}, Messages: 3, Auth: "PLAIN", User: "bob@example.test", Password: "wrong"},
			0, 3, map[string]int64{"AUTH 535 5.7.8": 3}},
		{"over the SIZE limit", Options{Server: ts.mx, To: []string{"bob@example.test"}, Messages: 3, Size: 20000, Reuse: true},
			0, 3, map[string]int64{"MAIL over the server's SIZE": 3}},
		{"MAIL refused without AUTH", Options{Server: ts.submission, To: []string{"bob@example.test"}, Messages: 2, Reuse: true},
			0, 2, map[string]int64{"MAIL 530 5.7.0": 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Run(context.Background(), c.o)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, e := range res.Errors {
				got[e.Kind] = e.Count
				if e.Example == "" {
					t.Errorf("%s: no example", e.Kind)
				}
			}
			if res.Messages != c.sent || res.Failed != c.failed || len(got) != len(c.wantKinds) {
				t.Fatalf("sent %d failed %d errors %v; want %d, %d, %v", res.Messages, res.Failed, got, c.sent, c.failed, c.wantKinds)
			}
			for k, n := range c.wantKinds {
				if got[k] != n {
					t.Errorf("%q: %d, want %d (all: %v)", k, got[k], n, got)
				}
			}
		})
	}
}

// A run bounded by time ends by itself, and a cancelled one at once, with what finished.
func TestRunBounds(t *testing.T) {
	ts := newTestServer(t, nil)
	res, err := Run(context.Background(), Options{Server: ts.mx, To: []string{"bob@example.test"}, Duration: 300 * time.Millisecond, Sessions: 2, Reuse: true})
	if err != nil || res.Messages == 0 || res.Failed != 0 {
		t.Fatalf("duration run: %v %+v", err, res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	base := ts.spool.committed()
	var progress testutil.SyncBuffer
	o := Options{Server: ts.mx, To: []string{"bob@example.test"}, Duration: time.Hour, Sessions: 2,
		Progress: &progress, ProgressEvery: time.Millisecond}
	o.Dialer = dialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ts.spool.committed()-base >= 20 {
			cancel() // enough: stop the run from inside it
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})
	res, err = Run(ctx, o)
	if err != nil || res.Messages < 10 || res.Failed != 0 {
		t.Fatalf("cancelled run: %v %+v", err, res)
	}
	if !strings.Contains(progress.String(), " messages  ") || !strings.HasSuffix(progress.String(), "\r\033[K") {
		t.Errorf("progress %q: want lines, then cleared", progress.String())
	}
	js, err := json.Marshal(res)
	if err != nil || !json.Valid(js) || !strings.Contains(string(js), `"messages_per_second"`) {
		t.Errorf("JSON %s: %v", js, err)
	}
}

// Without --from and --to, the addresses are in the server's domain, or its address literal.
func TestDefaultAddresses(t *testing.T) {
	for server, want := range map[string]string{
		"mx.example.test:25": "bench-sink@mx.example.test",
		"127.0.0.1:25":       "bench-sink@[127.0.0.1]",
		"[::1]:25":           "bench-sink@[IPv6:::1]",
	} {
		o := Options{Server: server}
		if err := o.Check(); err != nil || len(o.To) != 1 || o.To[0] != want || o.From != strings.Replace(want, "bench-sink", "bench", 1) {
			t.Errorf("%s: from %q to %q (%v), want %q", server, o.From, o.To, err, want)
		}
	}
}

// Bad options are usage errors, and nothing is sent.
func TestOptionsCheck(t *testing.T) {
	for _, o := range []Options{
		{},
		{Server: "localhost"},
		{Server: "127.0.0.1:25", StartTLS: true, TLS: true},
		{Server: "127.0.0.1:25", Auth: "PLAIN"},
		{Server: "127.0.0.1:25", Auth: "GSSAPI", User: "u"},
		{Server: "127.0.0.1:25", Messages: -1},
		{Server: "127.0.0.1:25", To: []string{"not an address"}},
		{Server: "127.0.0.1:25", StartTLS: true, CAFile: "/nonexistent"},
	} {
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: %v, want ErrUsage", o, err)
		}
	}
}

type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
