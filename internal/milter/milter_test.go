package milter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// recorder is a milter (go-milter's server side) that writes down what it was sent and
// answers as told.
type recorder struct {
	gomilter.NoOpMilter
	mu      *sync.Mutex
	seen    *[]string
	atRcpt  func() (*gomilter.Response, error)
	atEOM   func(m gomilter.Modifier) (*gomilter.Response, error)
	atChunk func() (*gomilter.Response, error)
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.seen = append(*r.seen, s)
}

func (r *recorder) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("connect " + host + " " + addr + " j=" + m.Get(gomilter.MacroMTAFQDN) + " daemon=" + m.Get(gomilter.MacroDaemonName) +
		" client_addr=" + m.Get(gomilter.MacroClientAddr) + " client_name=" + m.Get(gomilter.MacroClientName) +
		" client_ptr=" + m.Get(gomilter.MacroClientPTR) + " _=" + m.Get(gomilter.MacroRFC1413AuthInfo))
	return gomilter.RespContinue, nil
}

func (r *recorder) Helo(name string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("helo " + name)
	return gomilter.RespContinue, nil
}

func (r *recorder) MailFrom(from, args string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("mail " + from + " " + args + " auth=" + m.Get(gomilter.MacroAuthAuthen) + " mail_addr=" + m.Get(gomilter.MacroMailAddr))
	return gomilter.RespContinue, nil
}

func (r *recorder) RcptTo(rcpt, args string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("rcpt " + rcpt + " rcpt_addr=" + m.Get(gomilter.MacroRcptAddr))
	if r.atRcpt != nil {
		return r.atRcpt()
	}
	return gomilter.RespContinue, nil
}

func (r *recorder) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("header " + name + "=" + value)
	return gomilter.RespContinue, nil
}

func (r *recorder) BodyChunk(chunk []byte, m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("body " + string(chunk))
	if r.atChunk != nil {
		return r.atChunk()
	}
	return gomilter.RespContinue, nil
}

func (r *recorder) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	r.note("eom i=" + m.Get(gomilter.MacroQueueId))
	if r.atEOM != nil {
		return r.atEOM(m)
	}
	return gomilter.RespAccept, nil
}

func (r *recorder) Abort(m gomilter.Modifier) error {
	r.note("abort")
	return nil
}

// startMilter serves backend on a loopback port until the test ends and returns its address
// and what it saw.
func startMilter(t testing.TB, backend func(r *recorder)) (string, func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter {
		r := &recorder{mu: &mu, seen: &seen}
		if backend != nil {
			backend(r)
		}
		return r
	}), gomilter.WithActions(gomilter.AllClientSupportedActionMasks))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // ends with Close below
	}()
	t.Cleanup(func() {
		_ = srv.Close() // also closes the listener
		<-done
	})
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func testFilter(addr string, tempfail bool) *Filter {
	return New(Config{Name: "test", Network: "tcp", Address: addr, Roles: []smtpserver.Role{smtpserver.RoleMX},
		ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, EOMTimeout: 5 * time.Second, TempFail: tempfail})
}

var testConn = smtpserver.FilterConn{Role: smtpserver.RoleMX, Hostname: "mx.example.test",
	Remote: netip.MustParseAddrPort("127.0.0.2:40000"), Local: netip.MustParseAddrPort("127.0.0.1:25")}

const testMessage = "Received: from c\r\n\tby mx.example.test\r\nSubject: hi\r\nX-Old: 1\r\n\r\nbody\r\n"

// session runs a whole session through the filter, message included, and returns the
// verdicts of each stage.
func runSession(t *testing.T, f *Filter) []filter.Verdict {
	t.Helper()
	ctx := context.Background()
	fs := f.Open(ctx, testConn)
	if fs == nil {
		t.Fatal("Open returned nil for a role it filters")
	}
	defer fs.Close()
	st := smtpserver.FilterState{Helo: "client.example.org"}
	vs := []filter.Verdict{fs.Connect(ctx, st), fs.Helo(ctx, st)}
	st.From, st.FromArgs, st.User = "a@example.org", "BODY=8BITMIME", "alice"
	vs = append(vs, fs.Mail(ctx, st))
	vs = append(vs, fs.Rcpt(ctx, st, "bob@example.test", ""))
	st.Rcpts, st.QueueID = []string{"bob@example.test"}, "QID1"
	h, body, err := filter.ReadHeader(bufio.NewReader(strings.NewReader(testMessage)))
	if err != nil {
		t.Fatal(err)
	}
	return append(vs, fs.Message(ctx, st, h, body))
}

// What a milter is sent, with Postfix's macros, and how its edits come back.
func TestMilterSessionAndEdits(t *testing.T) {
	addr, seen := startMilter(t, func(r *recorder) {
		r.atEOM = func(m gomilter.Modifier) (*gomilter.Response, error) {
			for _, err := range []error{
				m.AddHeader("X-Added", "yes"),
				m.InsertHeader(0, "X-Top", "1"),
				m.ChangeHeader(1, "X-Old", ""),
				m.ChangeFrom("<b@example.org>", ""),
				m.AddRecipient("<carol@example.test>", ""),
				m.DeleteRecipient("<bob@example.test>"),
				m.ReplaceBody(strings.NewReader("new body\r\n")),
				m.Quarantine("looks odd"),
			} {
				if err != nil {
					return nil, err
				}
			}
			return gomilter.RespContinue, nil
		}
	})
	vs := runSession(t, testFilter(addr, true))
	for i, v := range vs[:4] {
		if v.Action != filter.Continue {
			t.Errorf("stage %d: %v", i, v.Action)
		}
	}
	want := []string{
		"connect [127.0.0.2] 127.0.0.2 j=mx.example.test daemon=smtp client_addr=127.0.0.2 client_name=unknown client_ptr=unknown _=unknown [127.0.0.2]",
		"helo client.example.org",
		"mail <a@example.org> BODY=8BITMIME auth=alice mail_addr=a@example.org",
		"rcpt <bob@example.test> rcpt_addr=bob@example.test",
		"header Received=from c\n\tby mx.example.test",
		"header Subject=hi",
		"header X-Old=1",
		"body body\r\n",
		"eom i=QID1",
	}
	if got := seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("milter saw\n%q\nwant\n%q", got, want)
	}
	v := vs[4]
	if v.Refused() || v.Action == filter.Discard || v.Quarantine != "looks odd" {
		t.Errorf("eom verdict %v quarantine %q", v.Action, v.Quarantine)
	}
	var kinds []filter.EditKind
	for _, e := range v.Edits {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) != 7 {
		t.Errorf("edits %+v", v.Edits)
	}
}

// The client's names at connect, as Postfix sends them: the connect event's host is the
// confirmed name or Sendmail's "[address]"; {client_name} the confirmed name or "unknown";
// {client_ptr} the PTR name, confirmed or not, or "unknown".
func TestMilterClientName(t *testing.T) {
	for _, tc := range []struct {
		test            string
		name, ptr, want string
	}{
		{"confirmed", "mail.remote.test", "mail.remote.test",
			"connect mail.remote.test 127.0.0.2 client_name=mail.remote.test client_ptr=mail.remote.test _=mail.remote.test [127.0.0.2]"},
		{"not confirmed", "unknown", "liar.remote.test",
			"connect [127.0.0.2] 127.0.0.2 client_name=unknown client_ptr=liar.remote.test _=unknown [127.0.0.2]"},
		{"no PTR", "unknown", "", "connect [127.0.0.2] 127.0.0.2 client_name=unknown client_ptr=unknown _=unknown [127.0.0.2]"},
		{"not looked up", "", "", "connect [127.0.0.2] 127.0.0.2 client_name=unknown client_ptr=unknown _=unknown [127.0.0.2]"},
	} {
		t.Run(tc.test, func(t *testing.T) {
			addr, seen := startMilter(t, nil)
			fs := testFilter(addr, true).Open(context.Background(), testConn)
			defer fs.Close()
			if v := fs.Connect(context.Background(), smtpserver.FilterState{ClientName: tc.name, ClientPTR: tc.ptr}); v.Action != filter.Continue {
				t.Fatalf("connect: %v", v.Action)
			}
			got := seen()
			if len(got) == 0 {
				t.Fatal("the milter saw no connect")
			}
			// Only the parts about the client.
			g := regexp.MustCompile(` j=\S+ daemon=\S+ client_addr=\S+`).ReplaceAllString(got[0], "")
			if g != tc.want {
				t.Errorf("milter saw\n%s\nwant\n%s", g, tc.want)
			}
		})
	}
}

// Every way a milter can refuse, and the replies the client gets.
func TestMilterRefusals(t *testing.T) {
	withCode := func() (*gomilter.Response, error) {
		return gomilter.RejectWithCodeAndReason(553, "5.7.1 go away\nfar away")
	}
	temp := func() (*gomilter.Response, error) { return gomilter.RejectWithCodeAndReason(421, "4.7.0 later") }
	for _, tc := range []struct {
		name    string
		backend func(r *recorder)
		stage   int
		want    filter.Action
		reply   smtp.Reply
	}{
		{"rcpt-reject", func(r *recorder) { r.atRcpt = func() (*gomilter.Response, error) { return gomilter.RespReject, nil } }, 3, filter.Reject, smtp.Reply{}},
		{"rcpt-tempfail", func(r *recorder) { r.atRcpt = func() (*gomilter.Response, error) { return gomilter.RespTempFail, nil } }, 3, filter.TempFail, smtp.Reply{}},
		{"rcpt-reply-code", func(r *recorder) { r.atRcpt = withCode }, 3, filter.Reject, smtp.R(553, "7.1", "go away\nfar away")},
		{"rcpt-4xx-reply-code", func(r *recorder) { r.atRcpt = temp }, 3, filter.TempFail, smtp.R(421, "7.0", "later")},
		{"body-reject", func(r *recorder) { r.atChunk = func() (*gomilter.Response, error) { return gomilter.RespReject, nil } }, 4, filter.Reject, smtp.Reply{}},
		{"eom-discard", func(r *recorder) {
			r.atEOM = func(gomilter.Modifier) (*gomilter.Response, error) { return gomilter.RespDiscard, nil }
		}, 4, filter.Discard, smtp.Reply{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startMilter(t, tc.backend)
			vs := runSession(t, testFilter(addr, true))
			if v := vs[tc.stage]; v.Action != tc.want || v.Reply != tc.reply {
				t.Errorf("stage %d: %v %+v, want %v %+v", tc.stage, v.Action, v.Reply, tc.want, tc.reply)
			}
		})
	}
}

// A milter that is down, crashes, or answers too late gets its default action: tempfail
// (451 4.7.1) or accept.
func TestMilterDownSlowCrashing(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := func(r *recorder) {
		r.atEOM = func(gomilter.Modifier) (*gomilter.Response, error) {
			<-release // answers only once the test is over: always past the timeout
			return gomilter.RespAccept, nil
		}
	}
	crash := func(r *recorder) {
		r.atRcpt = func() (*gomilter.Response, error) { return nil, errors.New("crash") }
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more
	for _, tc := range []struct {
		name     string
		addr     func() string
		tempfail bool
		stage    int // the first stage that gets the default
	}{
		{"down-tempfail", func() string { return deadAddr }, true, 0},
		{"down-accept", func() string { return deadAddr }, false, 0},
		{"crash-tempfail", func() string { a, _ := startMilter(t, crash); return a }, true, 3},
		{"crash-accept", func() string { a, _ := startMilter(t, crash); return a }, false, 3},
		{"slow-tempfail", func() string { a, _ := startMilter(t, slow); return a }, true, 4},
		{"slow-accept", func() string { a, _ := startMilter(t, slow); return a }, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFilter(tc.addr(), tc.tempfail)
			f.cfg.EOMTimeout = 100 * time.Millisecond
			vs := runSession(t, f)
			want := filter.Accept
			if tc.tempfail {
				want = filter.TempFail
			}
			for i, v := range vs {
				switch {
				case i < tc.stage && v.Action != filter.Continue:
					t.Errorf("stage %d: %v before the failure", i, v.Action)
				case i >= tc.stage && v.Action != want:
					t.Errorf("stage %d: %v, want %v", i, v.Action, want)
				}
			}
			if tc.tempfail && vs[len(vs)-1].RefusalReply().Enhanced() != "4.7.1" {
				t.Errorf("reply %+v", vs[len(vs)-1].RefusalReply())
			}
		})
	}
}

// A milter that sends garbage or a huge packet costs the session its milter (the default
// action), not the server its memory: the guard refuses the packet before go-milter allocates
// it.
func TestMilterGarbage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
	}{
		{"huge-packet", []byte{0x7f, 0xff, 0xff, 0xff, 'O'}},
		{"garbage", []byte("\x00\x00\x00\x05zzzzz")},
		{"short", []byte("\x00\x00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				// Read the negotiation packet, answer with the garbage and hang up.
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
				if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
					return
				}
				_, _ = c.Write(tc.reply)
			}()
			fs := testFilter(ln.Addr().String(), true).Open(context.Background(), testConn)
			v := fs.Connect(context.Background(), smtpserver.FilterState{})
			fs.Close()
			<-done
			if v.Action != filter.TempFail {
				t.Errorf("verdict %v, want tempfail", v.Action)
			}
		})
	}
}

func TestFramer(t *testing.T) {
	var f framer
	if err := f.feed([]byte{0, 0, 0, 2, 'a', 'b', 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := f.feed([]byte{0, 1, 'c'}); err != nil {
		t.Fatal(err)
	}
	if err := f.feed([]byte{0, 0x20, 0, 0}); !errors.Is(err, ErrTooBig) {
		t.Errorf("a 2 MiB packet: %v", err)
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		code int
		text string
		want smtp.Reply
		ok   bool
	}{
		{550, "550 5.7.1 spam", smtp.R(550, "7.1", "spam"), true},
		{550, "550-5.7.1 a\r\n550 5.7.1 b", smtp.R(550, "7.1", "a\nb"), true},
		{451, "451 no enhanced code", smtp.R(451, "7.1", "no enhanced code"), true},
		{550, "550 4.7.1 wrong class", smtp.R(550, "7.1", "4.7.1 wrong class"), true},
		{550, "551 wrong code", smtp.Reply{}, false},
		{250, "250 ok", smtp.Reply{}, false},
		{550, "550 a\x00b\x1b", smtp.R(550, "7.1", "ab"), true},
	} {
		got, ok := ParseReply(tc.code, tc.text)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseReply(%d, %q) = %+v, %v; want %+v, %v", tc.code, tc.text, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add(550, "550 5.7.1 spam")
	f.Add(451, "451-4.7.1 a\r\n451 4.7.1 b")
	f.Fuzz(func(t *testing.T, code int, text string) {
		r, ok := ParseReply(code, text)
		if !ok {
			return
		}
		if r.Code < 400 || r.Code > 599 || strings.ContainsAny(r.Text, "\r\x00") {
			t.Fatalf("bad reply %+v", r)
		}
		_ = r.String() // must format
	})
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'a'}, 3)
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		var a, b framer
		errA := a.feed(stream)
		cut = min(max(cut, 0), len(stream))
		errB := b.feed(stream[:cut])
		if errB == nil {
			errB = b.feed(stream[cut:])
		}
		// How the stream is split into reads does not change the verdict.
		if (errA == nil) != (errB == nil) {
			t.Fatalf("whole: %v, split at %d: %v", errA, cut, errB)
		}
	})
}

// A session that ends (a shutdown out of time) stops waiting for a slow milter: the call gets
// the default at once, whatever the end-of-message timeout.
func TestMilterSessionEnds(t *testing.T) {
	// The session's context ends while the message is under way, or before it starts.
	for _, before := range []bool{false, true} {
		t.Run(fmt.Sprintf("before=%v", before), func(t *testing.T) { testMilterSessionEnds(t, before) })
	}
}

func testMilterSessionEnds(t *testing.T, before bool) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	addr, _ := startMilter(t, func(r *recorder) {
		r.atEOM = func(gomilter.Modifier) (*gomilter.Response, error) {
			<-release
			return gomilter.RespAccept, nil
		}
	})
	f := testFilter(addr, true)
	f.cfg.EOMTimeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	fs := f.Open(ctx, testConn)
	defer fs.Close()
	st := smtpserver.FilterState{Helo: "c", From: "a@example.org"}
	for _, v := range []filter.Verdict{fs.Connect(ctx, st), fs.Helo(ctx, st), fs.Mail(ctx, st), fs.Rcpt(ctx, st, "b@example.test", "")} {
		if v.Action != filter.Continue {
			t.Fatalf("before the message: %v", v.Action)
		}
	}
	h, body, _ := filter.ReadHeader(bufio.NewReader(strings.NewReader(testMessage)))
	if before {
		cancel()
	}
	got := make(chan filter.Verdict)
	go func() { got <- fs.Message(ctx, st, h, body) }()
	cancel()
	if v := <-got; v.Action != filter.TempFail {
		t.Errorf("verdict %v, want tempfail", v.Action)
	}
}

// A milter filters only the listeners it is configured for.
func TestMilterRoles(t *testing.T) {
	f := testFilter("127.0.0.1:9", true) // RoleMX only
	c := testConn
	c.Role = smtpserver.RoleSubmission
	if fs := f.Open(context.Background(), c); fs != nil {
		t.Error("a session on the submission listener got the milter")
	}
}

// After an abort (RSET, or a message another filter refused) the milter takes the next
// transaction: MAIL is sent again and answered.
func TestMilterAbortThenMail(t *testing.T) {
	addr, seen := startMilter(t, nil)
	ctx := context.Background()
	fs := testFilter(addr, true).Open(ctx, testConn)
	st := smtpserver.FilterState{Helo: "c", From: "a@example.org"}
	vs := []filter.Verdict{fs.Connect(ctx, st), fs.Helo(ctx, st), fs.Mail(ctx, st), fs.Rcpt(ctx, st, "b@example.test", "")}
	fs.Abort(ctx)
	vs = append(vs, fs.Mail(ctx, st), fs.Rcpt(ctx, st, "c@example.test", ""))
	fs.Close()
	for i, v := range vs {
		if v.Action != filter.Continue {
			t.Errorf("call %d: %v", i, v.Action)
		}
	}
	// The milter's own goroutine records the abort; the second MAIL proves it was taken.
	if got := strings.Join(seen(), "|"); !strings.Contains(got, "abort|mail <a@example.org>") {
		t.Errorf("milter saw %q", got)
	}
}

// Once stopped, the guard keeps every deadline at now: go-milter's own deadline for its next
// read (the end-of-message wait, an hour here) cannot undo the stop. (CI once hung in
// TestMilterSessionEnds: the session's context ended, then End set its hour-long deadline.)
func TestGuardStopSticks(t *testing.T) {
	c, peer := net.Pipe()
	defer func() { _ = peer.Close() }()
	g := &guardConn{Conn: c, eomTimeout: time.Hour}
	g.stop()
	g.eom = true
	if err := g.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := g.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after the stop: %v, want a deadline error", err)
	}
	if _, err := g.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write after the stop: %v, want a deadline error", err)
	}
}
