package sasl

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// requirePeer fails the test when CI is set and skips it otherwise: a real peer (installed by
// scripts/test-deps.sh) is missing.
func requirePeer(t *testing.T, what string, err error) {
	t.Helper()
	testutil.MissingPeer(t, fmt.Sprintf("%s is not available (%v); install it with scripts/test-deps.sh", what, err))
}

// lineTool is an external program that exchanges one message a line, base64-encoded, on its
// standard input and output (gsasl, and the Authen::NTLM script of the NTLM tests).
type lineTool struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
}

// startLineTool starts name with args; it is killed after 20 seconds, and at the end of the test.
func startLineTool(t *testing.T, name string, args ...string) *lineTool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	p := &lineTool{t: t, cmd: exec.CommandContext(ctx, name, args...)}
	p.cmd.Stderr = &p.stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = bufio.NewReader(out)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		p.cmd.Wait()
	})
	return p
}

// line reads one line of output, without the prompts gsasl writes before its data.
func (p *lineTool) line() string {
	p.t.Helper()
	l, err := p.out.ReadString('\n')
	if err != nil {
		p.t.Fatalf("%s: reading: %v (stderr: %s)", p.cmd.Path, err, p.stderr.String())
	}
	l = strings.TrimSuffix(l, "\n")
	if i := strings.LastIndex(l, ": "); i >= 0 {
		l = l[i+2:]
	}
	return l
}

// recv reads one base64 message.
func (p *lineTool) recv() []byte {
	p.t.Helper()
	l := p.line()
	b, err := base64.StdEncoding.DecodeString(l)
	if err != nil {
		p.t.Fatalf("%s: %q is not base64", p.cmd.Path, l)
	}
	return b
}

// send writes one message, base64-encoded.
func (p *lineTool) send(msg []byte) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, base64.StdEncoding.EncodeToString(msg)+"\n"); err != nil {
		p.t.Fatalf("%s: writing: %v", p.cmd.Path, err)
	}
}

// wait closes the tool's input and returns its exit status.
func (p *lineTool) wait() error {
	p.in.Close()
	return p.cmd.Wait()
}

// TestScramGSASL checks tern's server against GNU SASL's client, and tern's client against its
// server, computing each step offline (gsasl reads and writes base64 lines).
func TestScramGSASL(t *testing.T) {
	if _, err := exec.LookPath("gsasl"); err != nil {
		requirePeer(t, "gsasl (GNU SASL)", err)
	}
	store := newSecretStore(t, scramAccounts())
	tls13 := tlsPair(t, tls.VersionTLS13)
	for _, mech := range scramMechs {
		plus := strings.HasSuffix(mech, "-PLUS")
		t.Run("gsasl client/"+mech, func(t *testing.T) {
			opts := ServerOptions{}
			var cb []byte
			if plus {
				opts.TLS, cb = tls13.server, exporterData(t, tls13.client)
			}
			identity, err := gsaslClient(t, mech, "pencil", cb, NewScramServer(context.Background(), mech, store, opts))
			if err != nil || identity != "user@example.test" {
				t.Fatalf("identity %q, error %v", identity, err)
			}
		})
		t.Run("gsasl server/"+mech, func(t *testing.T) {
			args := []string{"--server", "--quiet", "-m", mech, "-a", "user", "-p", "pencil"}
			var clientTLS *tls.ConnectionState
			if plus {
				clientTLS = tls13.client
			} else {
				args = append(args, "--no-cb")
			}
			p := startLineTool(t, "gsasl", args...)
			if got := p.line(); got != mech {
				t.Fatalf("gsasl offered %q", got)
			}
			c := NewScramClient(mech, "", "user", "pencil", clientTLS)
			if _, _, err := c.Start(); err != nil {
				t.Fatal(err)
			}
			// gsasl's server takes no initial response: it sends an empty challenge first.
			for i := 0; i < 3; i++ {
				resp, err := c.Next(p.recv())
				if err != nil {
					t.Fatalf("client step %d: %v (gsasl stderr: %s)", i+1, err, p.stderr.String())
				}
				p.send(resp)
				if i == 0 && plus {
					p.send(exporterData(t, tls13.server)) // it then asks for the tls-exporter data
				}
			}
			if err := p.wait(); err != nil {
				t.Errorf("gsasl: %v (stderr: %s)", err, p.stderr.String())
			}
		})
	}

	t.Run("gsasl client/wrong password", func(t *testing.T) {
		_, err := gsaslClient(t, ScramSHA256, "pencil!", nil, NewScramServer(context.Background(), ScramSHA256, store, ServerOptions{}))
		checkErr(t, err, ErrAuthFailed)
	})
	t.Run("gsasl client/binding of another connection", func(t *testing.T) {
		other := tlsPair(t, tls.VersionTLS13)
		s := NewScramServer(context.Background(), ScramSHA256Plus, store, ServerOptions{TLS: tls13.server})
		_, err := gsaslClient(t, ScramSHA256Plus, "pencil", exporterData(t, other.client), s)
		checkErr(t, err, ErrAuthFailed)
	})
}

func exporterData(t *testing.T, st *tls.ConnectionState) []byte {
	t.Helper()
	cb, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

// gsaslClient runs `gsasl --client` as user against s, giving it cb as the tls-exporter data
// (nil: --no-cb), and returns the server's outcome; on success gsasl must agree.
func gsaslClient(t *testing.T, mech, password string, cb []byte, s Server) (string, error) {
	t.Helper()
	args := []string{"--client", "--quiet", "-m", mech, "-a", "user", "-p", password}
	if cb == nil {
		args = append(args, "--no-cb")
	}
	p := startLineTool(t, "gsasl", args...)
	if cb != nil {
		p.send(cb) // gsasl asks for it first
	}
	if got := p.line(); got != mech {
		t.Fatalf("gsasl chose %q", got)
	}
	msg := p.recv()
	for {
		ch, done, err := s.Next(msg)
		if err != nil {
			return "", err
		}
		if done {
			break
		}
		p.send(ch)
		msg = p.recv()
	}
	_, _ = io.WriteString(p.in, "\n") // end gsasl's application data phase (a failed write shows in wait)
	if err := p.wait(); err != nil {
		t.Errorf("gsasl: %v (stderr: %s)", err, p.stderr.String())
	}
	return s.Identity(), nil
}
