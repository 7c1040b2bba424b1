package send

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// A scripted SMTP server for the transcript tests: each step expects one client line (or a
// message, or a TLS handshake) and sends its replies. "*" alone matches any line.
type step struct {
	expect  string   // the line ("x*": starting with x); "<data>" reads a message up to "."; "<tls>" runs the TLS handshake
	replies []string // sent after it, each with CRLF
}

func s(expect string, replies ...string) step { return step{expect, replies} }

// fakeDialer hands out the client end of a pipe whose server end runs a script (or a func).
type fakeDialer struct {
	t      *testing.T
	script []step
	run    func(c *fakeConn) // instead of script
	tlsCfg *tls.Config

	wg   sync.WaitGroup
	data []string // the messages received
	mu   sync.Mutex
}

// DialContext connects over loopback TCP rather than a pipe: a client that aborts a TLS
// handshake while the server is still writing needs the kernel's buffering.
func (d *fakeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	cconn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	sconn, err := ln.Accept()
	if err != nil {
		cconn.Close()
		return nil, err
	}
	fc := &fakeConn{t: d.t, conn: sconn, d: d}
	fc.br, fc.bw = bufio.NewReaderSize(sconn, 64<<10), bufio.NewWriter(sconn)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer fc.conn.Close()
		if d.run != nil {
			d.run(fc)
			return
		}
		fc.play(d.script)
	}()
	d.t.Cleanup(func() { cconn.Close(); d.wg.Wait() })
	return cconn, nil
}

type fakeConn struct {
	t      *testing.T
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	d      *fakeDialer
	broken bool
}

func (c *fakeConn) send(lines ...string) {
	for _, l := range lines {
		c.bw.WriteString(l + "\r\n")
	}
	_ = c.bw.Flush() // a client that hung up is seen at the next read
}

func (c *fakeConn) line() (string, bool) {
	l, err := c.br.ReadString('\n')
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(l, "\r\n"), true
}

func (c *fakeConn) startTLS() {
	tc := tls.Server(c.conn, c.d.tlsCfg)
	if err := tc.Handshake(); err != nil {
		c.broken = true // the client refused it: the test checks what the client says
		return
	}
	c.conn = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
}

func (c *fakeConn) play(script []step) {
	for _, st := range script {
		switch st.expect {
		case "":
		case "<tls>":
			c.startTLS()
		case "<data>":
			var b strings.Builder
			for {
				l, ok := c.line()
				if !ok {
					c.t.Errorf("fake server: the data did not end")
					return
				}
				if l == "." {
					break
				}
				b.WriteString(l + "\r\n")
			}
			c.d.mu.Lock()
			c.d.data = append(c.d.data, b.String())
			c.d.mu.Unlock()
		default:
			l, ok := c.line()
			if !ok {
				c.t.Errorf("fake server: connection closed, want %q", st.expect)
				return
			}
			if prefix, ok := strings.CutSuffix(st.expect, "*"); ok && strings.HasPrefix(l, prefix) {
				break
			}
			if l != st.expect {
				c.t.Errorf("fake server: got %q, want %q", l, st.expect)
			}
		}
		if c.broken {
			return
		}
		c.send(st.replies...)
	}
	// The client hangs up: anything more it sends is a mistake.
	if l, ok := c.line(); ok {
		c.t.Errorf("fake server: unexpected %q after the script", l)
	}
}

// testTLS returns a server TLS config with a fixed version and cipher (so that the transcript
// is the same everywhere) and the path of its certificate, for --ca.
func testTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	cert := testutil.SelfSigned(t, "mx.example.test")
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}, path
}

// ehloLines is a multiline 250 with the server name first.
func ehloLines(keywords ...string) []string {
	lines := append([]string{"mx.example.test"}, keywords...)
	out := make([]string, len(lines))
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		out[i] = "250" + sep + l
	}
	return out
}
