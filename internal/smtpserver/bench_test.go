package smtpserver

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/policy"
)

// countConn counts the reads a client needs: one per write of the server's, as long as the
// client keeps up, so reads per group show whether the replies to a group came in one write.
type countConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// benchmarkPipelined sends one pipelined group per iteration and reads its n replies. It
// reports the reads per group: 1 means the replies came in one write (RFC 2920 batching).
func benchmarkPipelined(b *testing.B, group string, n int) {
	benchmarkPipelinedWith(b, nil, group, n)
}

// It returns the server, for a look at what it stored.
func benchmarkPipelinedWith(b *testing.B, mod func(*Options), group string, n int) *testServer {
	ts := newTestServer(b, mod)
	raw, err := net.Dial("tcp", ts.addrs[RoleMX])
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	cc := &countConn{Conn: raw}
	r := bufio.NewReader(cc)
	readReply := func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) < 4 || line[3] != '-' {
				if line[0] != '2' && line[0] != '3' {
					b.Fatalf("reply %q", line)
				}
				return
			}
		}
	}
	readReply()
	if _, err := raw.Write([]byte("EHLO bench\r\n")); err != nil {
		b.Fatal(err)
	}
	readReply()
	cc.reads.Store(0)
	b.ResetTimer()
	for range b.N {
		if _, err := raw.Write([]byte(group)); err != nil {
			b.Fatal(err)
		}
		for range n {
			readReply()
		}
	}
	b.ReportMetric(float64(cc.reads.Load())/float64(b.N), "reads/group")
	return ts
}

// A group without a message: MAIL, three RCPTs, RSET.
func BenchmarkPipelinedGroup(b *testing.B) {
	benchmarkPipelined(b, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n"+
		"RCPT TO:<postmaster@example.test>\r\nRSET\r\n", 5)
}

// A whole message in one group: MAIL, RCPT, BDAT LAST (RFC 3030 lets the chunk follow at once).
func BenchmarkPipelinedBDAT(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat("x", 60) + "\r\n"
	benchmarkPipelined(b, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT "+
		strconv.Itoa(len(body))+" LAST\r\n"+body, 3)
}

// A 1 MiB message in one group, as one BDAT chunk and through DATA: what reading a large
// message costs the session (the test server keeps each message in memory: -benchtime 100x).
func BenchmarkPipelinedBDAT1M(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1<<20/78)
	b.SetBytes(int64(len(body)))
	benchmarkPipelined(b, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT "+
		strconv.Itoa(len(body))+" LAST\r\n"+body, 3)
}

func BenchmarkPipelinedDATA1M(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1<<20/78)
	b.SetBytes(int64(len(body)))
	benchmarkPipelined(b, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"+body+".\r\n", 4)
}

// A group larger than the session's read buffer (4 KiB): MAIL, 150 RCPTs, RSET. Its replies
// go out in more than one write, since the server does not wait for the rest of a line to
// send the replies that are ready.
func BenchmarkPipelinedLargeGroup(b *testing.B) {
	group := "MAIL FROM:<a@b.example>\r\n" + strings.Repeat("RCPT TO:<bob@example.test>\r\n", 150) + "RSET\r\n"
	benchmarkPipelined(b, group, 152)
}

// noKeys is a DKIM resolver without any key.
type noKeys struct{}

func (noKeys) LookupTXT(context.Context, string) ([]string, error) { return nil, dkim.ErrNoRecord }

// slowKeys answers DKIM key lookups from txt after delay, as a DNS server some way off does.
type slowKeys struct {
	txt   map[string]string
	delay time.Duration
}

func (r slowKeys) LookupTXT(ctx context.Context, name string) ([]string, error) {
	select {
	case <-time.After(r.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if v, ok := r.txt[name]; ok {
		return []string{v}, nil
	}
	return nil, dkim.ErrNoRecord
}

// A 5 KB message in one group, without and with the inbound checks (SPF answered at once, DKIM
// by the real verifier): unsigned (what the tee, the handoff and the Authentication-Results
// remover cost), signed with ed25519 and rsa (the key answered at once: what verifying costs in
// the session), and signed with the key answered after 20 ms (one session waits for the lookup
// before its reply, so this is the latency a lookup adds, not a throughput).
func BenchmarkMessage5KB(b *testing.B) {
	body := "Subject: bench\r\nAuthentication-Results: other.example; none\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70)
	group := func(body string) string {
		return "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body
	}
	checked := func(res dkim.Resolver) func(*Options) {
		return func(o *Options) {
			o.Authentication = &Authentication{SPF: fakeSPF{}, DKIM: dkim.Verifier{Resolver: res}, Policy: policy.Inbound{Check: true}}
		}
	}
	b.Run("plain", func(b *testing.B) { benchmarkPipelinedWith(b, nil, group(body), 3) })
	b.Run("checked", func(b *testing.B) { benchmarkPipelinedWith(b, checked(noKeys{}), group(body), 3) })
	b.Run("rate-limited", func(b *testing.B) { benchmarkPipelinedWith(b, withRate(nil, rateNeverReached), group(body), 3) })
	for _, tc := range []struct {
		name  string
		alg   dkim.Algorithm
		delay time.Duration
	}{{"signed-ed25519", dkim.Ed25519, 0}, {"signed-rsa", dkim.RSA, 0}, {"signed-ed25519-dns20ms", dkim.Ed25519, 20 * time.Millisecond}} {
		b.Run(tc.name, func(b *testing.B) {
			k, txt := dkimKey(b, tc.alg)
			signed := "From: <a@b.example>\r\n" + body
			sig, err := dkim.Sign(strings.NewReader(signed), []dkim.SigningKey{{Domain: "b.example", Selector: "s", Signer: k}})
			if err != nil {
				b.Fatal(err)
			}
			res := slowKeys{txt: map[string]string{dkim.RecordName("s", "b.example"): txt}, delay: tc.delay}
			ts := benchmarkPipelinedWith(b, checked(res), group(sig+signed), 3)
			if msgs := ts.spool.messages(); !strings.Contains(msgs[len(msgs)-1].env.Prepend, "dkim=pass") {
				b.Fatalf("not a pass: %q", msgs[len(msgs)-1].env.Prepend)
			}
		})
	}
}
