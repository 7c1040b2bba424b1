package smtpserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/sasl"
)

// panicDetector is a slog handler that notes whether a session panicked: the session's recover
// would otherwise hide a crash from the fuzzer.
type panicDetector struct{ panicked *atomic.Bool }

func (p panicDetector) Enabled(context.Context, slog.Level) bool { return true }
func (p panicDetector) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "session panic" {
		p.panicked.Store(true)
	}
	return nil
}
func (p panicDetector) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panicDetector) WithGroup(string) slog.Handler      { return p }

// fuzzSpool is a memSpool that remembers every message it hands out, so that the fuzzer can
// check that the session commits or aborts each one: none is left half there.
type fuzzSpool struct {
	memSpool
	mu   sync.Mutex
	msgs []*memMsg
}

func (s *fuzzSpool) NewMessage() (Message, error) {
	m, err := s.memSpool.NewMessage()
	if err == nil {
		s.mu.Lock()
		s.msgs = append(s.msgs, m.(*memMsg))
		s.mu.Unlock()
	}
	return m, err
}

// FuzzSession feeds arbitrary client input to a whole session: whatever arrives, the session
// must neither panic nor hang, and every reply must be a well-formed reply line.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HELO host.example.com\r\nMAIL FROM: <test@host.example.com>\r\nRCPT TO: <bob@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO trogdor\r\nRCPT TO: <kenneth@oeey.com>\r\nMAIL FROM: <kenneth@oeey.com>\r\nRCPT TO: <bob@example.test>\r\nDATA\r\nx\n.\nRSET\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b> BODY=BINARYMIME SMTPUTF8\r\nRCPT TO:<bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;x+2B\r\nBDAT 5\r\nab\r\ncBDAT 0 LAST\r\n",
		"EHLO c\r\nBDAT 10\r\nQUIT\r\n",
		"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"EHLO c\r\nVRFY x\r\nETRN @example.test\r\nHELP\r\nNOOP\r\nTURN\r\n\r\n\n\r",
		"EHLO c\r\nMAIL FROM:<jørgen@oeey.com> SMTPUTF8\r\nRCPT TO:<Postmaster>\r\nDATA\r\n..\r\n.\r\n",
		"EHLO trogdor\r\nAUTH LOGIN\r\na2VubmV0aC5idXJnZW5lcg==\r\nSW1CQjE5OTkh\r\nMAIL FROM:<kenneth.burgener@example.test>\r\nRCPT TO:<x@remote.example>\r\n",
		"EHLO c\r\nAUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh\r\nAUTH CRAM-MD5\r\n*\r\nAUTH DIGEST-MD5\r\ndXNlcm5hbWU9InRlc3Qi\r\n",
		"EHLO c\r\nAUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh\r\nMAIL FROM:<kenneth.burgener@example.test>\r\nRCPT TO:<bob@example.test>\r\n" +
			"DATA\r\nSubject: x\r\n folded\r\nDate: d\r\n\r\nbody\r\n.\r\nMAIL FROM:<kenneth.burgener@example.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 9 LAST\r\nSubject: x",
		"EHLO c\r\nAUTH NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=\r\nTlRMTVNTUAADAAAA\r\nAUTH SCRAM-SHA-256 biwsbj11c2VyLHI9YWJj\r\n=\r\n",
	} {
		f.Add([]byte(s))
	}
	// A fresh server and spool for every input: nothing one input does (messages queued, a
	// counter, a failed AUTH) may change what the next one sees, or a crash found would not
	// reproduce from its input alone.
	newServer := func(spool *fuzzSpool, panicked *atomic.Bool) *Server {
		return New(Options{
			Hostname:       "mx.example.test",
			MaxMessageSize: 2000,
			MaxErrors:      50,
			IdleTimeout:    2 * time.Second,
			Spool:          spool,
			Rcpts:          policy.NewRelay([]string{"example.test"}, memAccounts{"bob@example.test": true}),
			Flusher:        fakeFlusher{},
			Headers:        policy.Headers{AddMissing: true},
			Logger:         slog.New(panicDetector{panicked}),
			Auth: &AuthOptions{
				Mechanisms:       allMechs,
				NewServer:        sasl.NewServer,
				Credentials:      fakeCreds{passwords: map[string]string{seedUser: seedPassword}},
				Realms:           []string{"example.test"},
				LoopbackIsSecure: true,
				AllowCleartext:   true, // net.Pipe has no address: let AUTH run anyway
				SenderMustOwn:    true,
			},
		})
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		var panicked atomic.Bool
		spool := &fuzzSpool{}
		srv := newServer(spool, &panicked)
		server, clientConn := net.Pipe()
		sess := srv.newSession(server, Listener{Name: "smtp", Role: RoleMX}, srv.opts.Load())
		done := make(chan struct{})
		go func() { sess.serve(); close(done) }()
		out := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(clientConn)
			out <- string(b)
		}()
		clientConn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = clientConn.Write(input) // the session may hang up first: its replies are what count
		clientConn.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session hangs on %q", input)
		}
		replies := <-out
		if panicked.Load() {
			t.Fatalf("session panicked on %q", input)
		}
		for _, m := range spool.msgs { // the session is over: no lock needed
			if m.env == nil && !m.aborted {
				t.Fatalf("message %s neither committed nor aborted after the session on %q", m.id, input)
			}
		}
		lines := strings.SplitAfter(replies, "\r\n")
		// The client hangs up after its input, so the last reply may be cut off mid-line.
		lines = lines[:len(lines)-1]
		for _, line := range lines {
			if len(line) < 5 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-') || !strings.HasSuffix(line, "\r\n") {
				t.Fatalf("malformed reply line %q for input %q", line, input)
			}
		}
	})
}
