package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

var orig = "From: Kenneth <kenneth@oeey.com>\r\nTo: bob@remote.example\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n"

func parse(t *testing.T, b []byte) (*mail.Message, []*multipart.Part, [][]byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in the report")
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		parts = append(parts, p)
		bodies = append(bodies, body)
	}
	return m, parts, bodies
}

// statusFields parses a message/delivery-status body: groups of header fields.
func statusFields(t *testing.T, body []byte) []textproto.MIMEHeader {
	t.Helper()
	var groups []textproto.MIMEHeader
	for _, g := range strings.Split(strings.TrimSpace(string(body)), "\r\n\r\n") {
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(g + "\r\n\r\n"))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("group %q: %v", g, err)
		}
		groups = append(groups, h)
	}
	return groups
}

func TestFailureReport(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := &Report{
		ReportingMTA: "mx.example.test",
		QueueID:      "660F2FDE0E10E",
		EnvID:        "QQ314159",
		Arrival:      now.Add(-time.Hour),
		To:           "kenneth@oeey.com",
		Now:          now,
		Recipients: []Recipient{{
			Final: "bob@remote.example", Original: "rfc822;Bob@Remote.example", Action: Failed, Status: "5.1.1",
			RemoteMTA: "mx.remote.example", Reply: "550 5.1.1 <bob@remote.example>: User unknown", LastAttempt: now,
		}},
	}
	var b bytes.Buffer
	if err := r.Write(&b, strings.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	m, parts, bodies := parse(t, b.Bytes())
	if m.Header.Get("To") != "<kenneth@oeey.com>" || m.Header.Get("Auto-Submitted") != "auto-replied" ||
		!strings.HasPrefix(m.Header.Get("From"), "Mail Delivery System <MAILER-DAEMON@mx.example.test>") ||
		m.Header.Get("Subject") != "Undelivered Mail Returned to Sender" {
		t.Errorf("headers %v", m.Header)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	if !strings.Contains(string(bodies[0]), "<bob@remote.example>: host mx.remote.example said: 550 5.1.1") {
		t.Errorf("human part %q", bodies[0])
	}
	if parts[1].Header.Get("Content-Type") != "message/delivery-status" {
		t.Errorf("second part %q", parts[1].Header.Get("Content-Type"))
	}
	g := statusFields(t, bodies[1])
	if len(g) != 2 || g[0].Get("Reporting-MTA") != "dns; mx.example.test" || g[0].Get("Original-Envelope-Id") != "QQ314159" ||
		g[0].Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", g)
	}
	rc := g[1]
	for k, v := range map[string]string{
		"Final-Recipient": "rfc822; bob@remote.example", "Original-Recipient": "rfc822;Bob@Remote.example",
		"Action": "failed", "Status": "5.1.1", "Remote-Mta": "dns; mx.remote.example",
		"Diagnostic-Code": "smtp; 550 5.1.1 <bob@remote.example>: User unknown",
	} {
		if rc.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, rc.Get(k), v)
		}
	}
	if parts[2].Header.Get("Content-Type") != "message/rfc822" || string(bodies[2]) != orig+"\r\n" && string(bodies[2]) != orig {
		t.Errorf("returned message %q %q", parts[2].Header.Get("Content-Type"), bodies[2])
	}
}

func TestReturnHeadersOnly(t *testing.T) {
	for name, r := range map[string]*Report{
		"RET=HDRS":  {Ret: "HDRS"},
		"too large": {MaxReturn: 40},
	} {
		t.Run(name, func(t *testing.T) {
			r.ReportingMTA, r.To = "mx.example.test", "a@b.example"
			r.Recipients = []Recipient{{Final: "x@y.example", Action: Failed, Status: "5.0.0"}}
			var b bytes.Buffer
			if err := r.Write(&b, strings.NewReader(orig)); err != nil {
				t.Fatal(err)
			}
			_, parts, bodies := parse(t, b.Bytes())
			if parts[2].Header.Get("Content-Type") != "text/rfc822-headers" || strings.Contains(string(bodies[2]), "line one") ||
				!strings.Contains(string(bodies[2]), "Subject: hello") && name == "RET=HDRS" {
				t.Errorf("%q: %q", parts[2].Header.Get("Content-Type"), bodies[2])
			}
		})
	}
}

func TestDelayAndSuccessReports(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		a       Action
		subject string
	}{{Delayed, "Delayed Mail (still being retried)"}, {Delivered, "Successful Mail Delivery Report"}} {
		r := &Report{ReportingMTA: "mx.example.test", To: "a@b.example", Now: now,
			Recipients: []Recipient{{Final: "x@y.example", Action: tc.a, Status: "4.4.1", WillRetryUntil: now.Add(96 * time.Hour)}}}
		var b bytes.Buffer
		if err := r.Write(&b, nil); err != nil {
			t.Fatal(err)
		}
		m, parts, bodies := parse(t, b.Bytes())
		if m.Header.Get("Subject") != tc.subject || len(parts) != 2 {
			t.Errorf("%s: subject %q, %d parts", tc.a, m.Header.Get("Subject"), len(parts))
		}
		g := statusFields(t, bodies[1])
		if (g[1].Get("Will-Retry-Until") != "") != (tc.a == Delayed) {
			t.Errorf("%s: Will-Retry-Until %q", tc.a, g[1].Get("Will-Retry-Until"))
		}
	}
}

// A hostile value cannot add fields or break the MIME structure.
func TestFieldsStaySingleLines(t *testing.T) {
	r := &Report{ReportingMTA: "mx.example.test", To: "a@b.example", EnvID: "x\r\nAction: delivered",
		Recipients: []Recipient{{Final: "x@y.example\r\nStatus: 2.0.0", Action: Failed, Status: "5.0.0",
			Reply: "550 no\r\n--boundary", Note: "x\r\nAction: delivered"}}}
	var b bytes.Buffer
	if err := r.Write(&b, nil); err != nil {
		t.Fatal(err)
	}
	_, _, bodies := parse(t, b.Bytes())
	g := statusFields(t, bodies[1])
	if len(g) != 2 || g[1].Get("Action") != "failed" || len(g[1]["Status"]) != 1 || len(g[0]["Action"]) != 0 {
		t.Errorf("fields: %v", g)
	}
}

// TestWhoSaidIt checks that "Diagnostic-Code: smtp;" and Remote-MTA are only a remote server's
// reply and its host (RFC 3464 §2.3.5, §2.3.6), and that what tern found itself says so.
func TestWhoSaidIt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rcpt  Recipient
		diag  string // Diagnostic-Code, "" for none
		rmta  string // Remote-MTA, "" for none
		human string // the recipient's line in the first part
	}{
		{"remote reply",
			Recipient{Status: "5.1.1", RemoteMTA: "mx.b.test", Reply: "550 5.1.1 no such user"},
			"smtp; 550 5.1.1 no such user", "dns; mx.b.test",
			"<x@y.example>: host mx.b.test said: 550 5.1.1 no such user"},
		{"local mailbox server's reply",
			Recipient{Status: "5.2.2", Reply: "552 5.2.2 over quota"},
			"smtp; 552 5.2.2 over quota", "",
			"<x@y.example>: the mailbox server said: 552 5.2.2 over quota"},
		{"no such domain",
			Recipient{Status: "5.1.2", Note: "the domain nx.test does not exist"},
			"X-Tern; the domain nx.test does not exist", "",
			"<x@y.example>: the domain nx.test does not exist"},
		{"returned by the administrator after a remote 4xx",
			Recipient{Status: "5.0.0", Note: "returned to sender by the administrator", RemoteMTA: "mx.b.test", Reply: "451 4.3.0 try later"},
			"smtp; 451 4.3.0 try later", "dns; mx.b.test",
			"<x@y.example>: returned to sender by the administrator; last attempt: host mx.b.test said: 451 4.3.0 try later"},
		{"nothing said",
			Recipient{Status: "5.0.0"}, "", "", "<x@y.example>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rcpt.Final, tc.rcpt.Action = "x@y.example", Failed
			r := &Report{ReportingMTA: "mx.example.test", To: "a@b.example", Recipients: []Recipient{tc.rcpt}}
			var b bytes.Buffer
			if err := r.Write(&b, nil); err != nil {
				t.Fatal(err)
			}
			_, _, bodies := parse(t, b.Bytes())
			g := statusFields(t, bodies[1])
			if got := g[1].Get("Diagnostic-Code"); got != tc.diag {
				t.Errorf("Diagnostic-Code %q, want %q", got, tc.diag)
			}
			if got := g[1].Get("Remote-Mta"); got != tc.rmta {
				t.Errorf("Remote-MTA %q, want %q", got, tc.rmta)
			}
			if !strings.Contains(string(bodies[0]), "\r\n"+tc.human+"\r\n") {
				t.Errorf("human part %q lacks the line %q", bodies[0], tc.human)
			}
		})
	}
}

func TestWants(t *testing.T) {
	for _, tc := range []struct {
		notify string
		a      Action
		want   bool
	}{
		{"", Failed, true}, {"", Delayed, true}, {"", Delivered, false},
		{"NEVER", Failed, false}, {"SUCCESS", Delivered, true}, {"SUCCESS", Failed, false},
		{"FAILURE,DELAY", Delayed, true}, {"failure", Failed, true}, {"DELAY", Failed, false},
		{"SUCCESS", Relayed, true},
	} {
		var n []string
		if tc.notify != "" {
			n = strings.Split(tc.notify, ",")
		}
		if got := Wants(n, tc.a); got != tc.want {
			t.Errorf("Wants(%q, %s) = %v", tc.notify, tc.a, got)
		}
	}
	if err := (&Report{}).Write(io.Discard, nil); err != ErrNoRecipients {
		t.Errorf("empty report: %v", err)
	}
}
