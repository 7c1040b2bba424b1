package bench

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/testutil"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// countSpool is a smtpserver.Spool that keeps what the bench tests check: how many messages
// were committed, their recipients, sizes and Message-IDs.
type countSpool struct {
	mu    sync.Mutex
	n     int
	done  int // committed
	rcpts int
	sizes map[int]int
	ids   map[string]bool
}

func (s *countSpool) NewMessage() (smtpserver.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return &countMsg{s: s, id: "BENCH" + strconv.Itoa(100000+s.n)}, nil
}

type countMsg struct {
	s    *countSpool
	id   string
	size int
	head []byte // the first octets, for the Message-ID
}

func (m *countMsg) ID() string { return m.id }

func (m *countMsg) Write(p []byte) (int, error) {
	if len(m.head) < 4096 {
		m.head = append(m.head, p[:min(len(p), 4096-len(m.head))]...)
	}
	m.size += len(p)
	return len(p), nil
}

func (m *countMsg) Commit(_ context.Context, env *envelope.Envelope) error {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sizes == nil {
		s.sizes, s.ids = map[int]int{}, map[string]bool{}
	}
	s.done++
	s.rcpts += len(env.Rcpts)
	s.sizes[m.size]++
	_, rest, _ := strings.Cut(string(m.head), "\r\nMessage-ID: ")
	id, _, _ := strings.Cut(rest, "\r\n")
	s.ids[id] = true
	return nil
}

func (m *countMsg) Abort() {}

func (s *countSpool) counts() (msgs, rcpts, ids int, sizes map[int]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done, s.rcpts, len(s.ids), s.sizes
}

func (s *countSpool) committed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// accounts says which addresses exist.
type accounts map[string]bool

func (a accounts) Exists(_ context.Context, addr string) (bool, error) { return a[addr], nil }

// passwords checks PLAIN and LOGIN passwords.
type passwords map[string]string

func (p passwords) CheckPassword(_ context.Context, login, password string) (string, error) {
	if pw, ok := p[login]; ok && pw == password {
		return login, nil
	}
	return "", sasl.ErrAuthFailed
}

func (p passwords) Secret(context.Context, string, string) (string, []byte, error) {
	return "", nil, sasl.ErrAuthFailed
}

// testServer is tern's SMTP server in the test, with STARTTLS and AUTH PLAIN, on an MX and a
// submission listener on loopback.
type testServer struct {
	spool          *countSpool
	mx, submission string
}

func newTestServer(t *testing.T, mod func(*smtpserver.Options)) *testServer {
	t.Helper()
	ts := &testServer{spool: &countSpool{}}
	logs := &testutil.SyncBuffer{}
	opts := smtpserver.Options{
		Hostname:         "mx.example.test",
		PostmasterDomain: "example.test",
		TLS:              tlsutil.ServerConfig(testutil.SelfSigned(t, "mx.example.test")),
		Spool:            ts.spool,
		Rcpts: policy.NewRelay([]string{"example.test"}, accounts{
			"bob@example.test": true, "bob+2@example.test": true, "carol@example.test": true,
		}),
		Auth: &smtpserver.AuthOptions{
			Mechanisms:       []string{sasl.Plain},
			NewServer:        sasl.NewServer,
			Credentials:      passwords{"bob@example.test": "bobpw"},
			LoopbackIsSecure: true,
		},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	srv := smtpserver.New(opts)
	for _, role := range []smtpserver.Role{smtpserver.RoleMX, smtpserver.RoleSubmission} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if role == smtpserver.RoleMX {
			ts.mx = ln.Addr().String()
		} else {
			ts.submission = ln.Addr().String()
		}
		go func() { _ = srv.Serve(ln, role) }() // ErrServerClosed at Shutdown
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}
