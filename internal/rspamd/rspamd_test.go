package rspamd

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpserver"
)

const testMessage = "Received: from c\r\nSubject: hi\r\nX-Spam-Status: Yes, forged\r\n\r\nbody\r\n"

func check(t *testing.T, answer string, status int, tempfail bool) (filter.Verdict, *http.Request, string) {
	t.Helper()
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	f := New(Config{URL: srv.URL, Roles: []smtpserver.Role{smtpserver.RoleMX}, Timeout: 5 * time.Second, TempFail: tempfail})
	fs := f.Open(context.Background(), smtpserver.FilterConn{Role: smtpserver.RoleMX, Hostname: "mx.example.test",
		Remote: netip.MustParseAddrPort("192.0.2.1:4000")})
	h, b, err := filter.ReadHeader(bufio.NewReader(strings.NewReader(testMessage)))
	if err != nil {
		t.Fatal(err)
	}
	st := smtpserver.FilterState{Helo: "c.example.org", From: "a@example.org", Rcpts: []string{"b@example.test", "c@example.test"}, QueueID: "Q1", User: "alice"}
	return fs.Message(context.Background(), st, h, b), got, body
}

// The request carries the message as stored and the envelope in rspamd's headers.
func TestRequest(t *testing.T) {
	_, r, body := check(t, `{"action":"no action","score":0,"required_score":15}`, 200, true)
	if r.Method != "POST" || r.URL.Path != "/checkv2" || body != testMessage {
		t.Errorf("%s %s with %q", r.Method, r.URL.Path, body)
	}
	for k, want := range map[string]string{"From": "a@example.org", "Rcpt": "b@example.test,c@example.test", "Ip": "192.0.2.1",
		"Helo": "c.example.org", "Queue-Id": "Q1", "User": "alice", "Mta-Name": "mx.example.test"} {
		if got := strings.Join(r.Header.Values(k), ","); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// Each action of rspamd, and what the message becomes.
func TestActions(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		action       filter.Action
		reply        smtp.Reply
		quarantine   bool
		stored       string // the message after the edits; "" when refused
	}{
		{"reject", `{"action":"reject","score":15,"required_score":15,"messages":{"smtp_message":"Gtube pattern"}}`,
			filter.Reject, smtp.R(554, "7.1", "Gtube pattern"), false, ""},
		{"reject-without-message", `{"action":"reject","score":20,"required_score":15}`, filter.Reject, replyReject, false, ""},
		{"soft-reject", `{"action":"soft reject","score":1,"required_score":15}`, filter.TempFail, replySoft, false, ""},
		{"greylist", `{"action":"greylist","score":5,"required_score":15}`, filter.TempFail, replyGreylist, false, ""},
		{"discard", `{"action":"discard","score":5,"required_score":15}`, filter.Discard, smtp.Reply{}, false, ""},
		{"no-action", `{"action":"no action","score":1.5,"required_score":15,"symbols":{"B":{"score":1,"options":["x","y"]},"A":{"score":0.5}}}`,
			filter.Continue, smtp.Reply{}, false,
			"Received: from c\r\nSubject: hi\r\nX-Spam-Status: No, score=1.50 required=15.00 action=\"no action\"\r\nX-Spam-Score: 1.50\r\n" +
				"X-Spamd-Result: default: False [1.50 / 15.00];\r\n\tA(0.50)[];\r\n\tB(1.00)[x,y]\r\n\r\nbody\r\n"},
		{"add-header", `{"action":"add header","score":7,"required_score":15,"milter":{"add_headers":{"X-Spamd-Result":"own","X-Order":{"value":"top","order":0},"X-Two":["a",{"value":"b"}]},"remove_headers":{"Subject":1}}}`,
			filter.Continue, smtp.Reply{}, false,
			"X-Order: top\r\nReceived: from c\r\nX-Spamd-Result: own\r\nX-Two: a\r\nX-Two: b\r\nX-Spam: Yes\r\nX-Spam-Status: Yes, score=7.00 required=15.00 action=\"add header\"\r\nX-Spam-Score: 7.00\r\n\r\nbody\r\n"},
		{"rspamd-sets-its-own", `{"action":"no action","score":0,"required_score":15,"milter":{"remove_headers":{"X-Spam-Status":0},"add_headers":{"X-Spamd-Result":{"value":"default: False [0.00 / 15.00]","order":-1},"X-Spam-Status":{"value":"No, score=0.00","order":-1}}}}`,
			filter.Continue, smtp.Reply{}, false,
			"Received: from c\r\nSubject: hi\r\nX-Spam-Status: No, score=0.00\r\nX-Spamd-Result: default: False [0.00 / 15.00]\r\nX-Spam-Score: 0.00\r\n\r\nbody\r\n"},
		{"rewrite-subject", `{"action":"rewrite subject","score":8,"required_score":15,"subject":"[SPAM] hi"}`,
			filter.Continue, smtp.Reply{}, false,
			"Received: from c\r\nSubject: [SPAM] hi\r\nX-Spam: Yes\r\nX-Spam-Status: Yes, score=8.00 required=15.00 action=\"rewrite subject\"\r\nX-Spam-Score: 8.00\r\n" +
				"X-Spamd-Result: default: True [8.00 / 15.00]\r\n\r\nbody\r\n"},
		{"quarantine", `{"action":"quarantine","score":9,"required_score":15}`, filter.Continue, smtp.Reply{}, true,
			"Received: from c\r\nSubject: hi\r\nX-Spam: Yes\r\nX-Spam-Status: Yes, score=9.00 required=15.00 action=\"quarantine\"\r\nX-Spam-Score: 9.00\r\n" +
				"X-Spamd-Result: default: True [9.00 / 15.00]\r\n\r\nbody\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, _ := check(t, tc.answer, 200, true)
			if v.Action != tc.action || v.Reply != tc.reply || (v.Quarantine != "") != tc.quarantine {
				t.Fatalf("verdict %v %+v quarantine %q", v.Action, v.Reply, v.Quarantine)
			}
			if tc.stored == "" {
				return
			}
			h, b, _ := filter.ReadHeader(bufio.NewReader(strings.NewReader(testMessage)))
			if _, _, err := filter.Apply(&h, v.Edits); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if _, err := h.Write(&out, b); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.stored {
				t.Errorf("stored\n%q\nwant\n%q", out.String(), tc.stored)
			}
		})
	}
}

// rspamd down, broken or answering nonsense: the default action.
func TestDefaultAction(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
	}{
		{"http-error", `{}`, 500},
		{"not-json", `<html>`, 200},
		{"no-action", `{"score":1}`, 200},
		{"bad-add-headers", `{"action":"no action","milter":{"add_headers":{"X":5}}}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, _, _ := check(t, tc.answer, tc.status, true); v.Action != filter.TempFail || v.RefusalReply().Enhanced() != "4.7.1" {
				t.Errorf("tempfail default: %v %+v", v.Action, v.Reply)
			}
			if v, _, _ := check(t, tc.answer, tc.status, false); v.Action != filter.Continue || len(v.Edits) != 0 {
				t.Errorf("accept default: %v", v)
			}
		})
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"action":"add header","score":7,"milter":{"add_headers":{"X":[{"value":"a","order":1},"b"]},"remove_headers":{"Y":0}},"symbols":{"S":{"score":1,"options":["o"]}}}`))
	f.Add([]byte(`{"action":"reject","messages":{"smtp_message":"x\r\ny"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		h, body, _ := filter.ReadHeader(bufio.NewReader(strings.NewReader(testMessage)))
		v := r.Verdict(h)
		if v.Refused() {
			if rr := v.RefusalReply(); strings.ContainsAny(rr.Text, "\r\n\x00") {
				t.Fatalf("reply %q", rr.Text)
			}
			return
		}
		_, _, _ = filter.Apply(&h, v.Edits)
		var out strings.Builder
		if _, err := h.Write(&out, body); err != nil {
			t.Fatal(err)
		}
	})
}
