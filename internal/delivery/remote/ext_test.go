package remote

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

// TestExtensions checks what goes out, or why nothing does, for what a message needs against
// what the server offers.
func TestExtensions(t *testing.T) {
	t.Parallel()
	const eightBit = "Subject: caf\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n"
	const eightBitBody = "Subject: cafe\r\n\r\ncaf\xc3\xa9\r\n"
	tests := []struct {
		name  string
		ext   []string
		env   func(*envelope.Envelope)
		rcpt  string // default bob@dest.test
		body  string // default testMessage
		want  string
		check func(t *testing.T, tx *txn) // the transaction, when one was accepted
	}{{
		name: "SIZE over the limit: refused before sending",
		ext:  []string{"SIZE 20"},
		want: "perm 552 5.3.4",
	}, {
		name: "SIZE= sent",
		ext:  []string{"SIZE 100000", "PIPELINING"},
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !strings.Contains(tx.mail, " SIZE="+strconv.Itoa(len(testMessage))) {
				t.Errorf("MAIL %q", tx.mail)
			}
		},
	}, {
		name: "PIPELINING used",
		ext:  []string{"PIPELINING"},
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !tx.pipelined {
				t.Errorf("MAIL was not pipelined")
			}
		},
	}, {
		name: "no PIPELINING: one command at a time",
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if tx.pipelined {
				t.Errorf("MAIL was pipelined")
			}
		},
	}, {
		name: "8BITMIME offered",
		ext:  []string{"8BITMIME"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBit,
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !strings.Contains(tx.mail, " BODY=8BITMIME") || string(tx.data) != eightBit {
				t.Errorf("MAIL %q, data %q", tx.mail, tx.data)
			}
		},
	}, {
		name: "8-bit body, no 8BITMIME: converted to quoted-printable",
		ext:  []string{"SIZE 1000"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBitBody,
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			want := "Subject: cafe\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n" +
				"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n"
			if strings.Contains(tx.mail, "BODY=") || !strings.Contains(tx.mail, " SIZE="+strconv.Itoa(len(want))) || string(tx.data) != want {
				t.Errorf("MAIL %q, data %q", tx.mail, tx.data)
			}
		},
	}, {
		name: "converted, and then over the SIZE limit: refused before sending",
		ext:  []string{"SIZE 100"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBitBody, // 30 octets, 130 once converted
		want: "perm 552 5.3.4",
	}, {
		name: "8-bit body that cannot be converted: bounce",
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\ncaf\xc3\xa9\r\n",
		want: "perm 554 5.6.3",
	}, {
		name: "8-bit header, no 8BITMIME: bounce",
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBit,
		want: "perm 554 5.6.3",
	}, {
		name: "declared 8BITMIME but 7-bit, no 8BITMIME: sent without BODY",
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if strings.Contains(tx.mail, "BODY=") {
				t.Errorf("MAIL %q", tx.mail)
			}
		},
	}, {
		name: "BINARYMIME with CHUNKING: BDAT, octets as they are",
		ext:  []string{"CHUNKING", "BINARYMIME", "8BITMIME"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.BodyBinaryMIME },
		body: "Subject: bin\r\n\r\n\x00\x01\n\r\xff",
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !tx.bdat || !strings.Contains(tx.mail, " BODY=BINARYMIME") || string(tx.data) != "Subject: bin\r\n\r\n\x00\x01\n\r\xff" {
				t.Errorf("bdat %v, MAIL %q, data %q", tx.bdat, tx.mail, tx.data)
			}
		},
	}, {
		name: "BINARYMIME without CHUNKING: bounce",
		ext:  []string{"BINARYMIME", "8BITMIME"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.BodyBinaryMIME },
		want: "perm 554 5.6.3",
	}, {
		name: "SMTPUTF8 offered",
		ext:  []string{"SMTPUTF8", "8BITMIME"},
		env:  func(e *envelope.Envelope) { e.SMTPUTF8 = true },
		rcpt: "bøb@dest.test",
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !strings.Contains(tx.mail, " SMTPUTF8") || !strings.Contains(tx.rcpts[0], "bøb@dest.test") {
				t.Errorf("MAIL %q, RCPT %q", tx.mail, tx.rcpts)
			}
		},
	}, {
		name: "non-ASCII address, no SMTPUTF8: bounce",
		ext:  []string{"8BITMIME"},
		env:  func(e *envelope.Envelope) { e.SMTPUTF8 = true },
		rcpt: "bøb@dest.test",
		want: "perm 553 5.6.7",
	}, {
		name: "UTF-8 header, no SMTPUTF8: bounce",
		ext:  []string{"8BITMIME"},
		env:  func(e *envelope.Envelope) { e.SMTPUTF8 = true; e.Body = envelope.Body8BitMIME },
		body: eightBit,
		want: "perm 553 5.6.7",
	}, {
		name: "SMTPUTF8 declared but all ASCII: sent without it",
		env:  func(e *envelope.Envelope) { e.SMTPUTF8 = true },
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if strings.Contains(tx.mail, "SMTPUTF8") {
				t.Errorf("MAIL %q", tx.mail)
			}
		},
	}, {
		name: "DSN parameters passed on",
		ext:  []string{"DSN"},
		env: func(e *envelope.Envelope) {
			e.Ret, e.EnvID = "HDRS", "id+1=2"
			e.Rcpts[0].Notify = []string{"SUCCESS", "FAILURE"}
			e.Rcpts[0].ORcpt = "rfc822;bob+tag@dest.test"
		},
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if !strings.HasSuffix(tx.mail, " RET=HDRS ENVID=id+2B1+3D2") {
				t.Errorf("MAIL %q", tx.mail)
			}
			if want := "RCPT TO:<bob@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Btag@dest.test"; tx.rcpts[0] != want {
				t.Errorf("RCPT %q, want %q", tx.rcpts[0], want)
			}
		},
	}, {
		name: "no DSN at the server: NOTIFY=SUCCESS makes it relayed",
		env: func(e *envelope.Envelope) {
			e.Ret, e.EnvID = "FULL", "x"
			e.Rcpts[0].Notify = []string{"SUCCESS"}
		},
		want: "relayed",
		check: func(t *testing.T, tx *txn) {
			if tx.mail != "MAIL FROM:<alice@sender.test>" || tx.rcpts[0] != "RCPT TO:<bob@dest.test>" {
				t.Errorf("MAIL %q, RCPT %q", tx.mail, tx.rcpts)
			}
		},
	}, {
		name: "DSN at the server: not relayed",
		ext:  []string{"DSN"},
		env:  func(e *envelope.Envelope) { e.Rcpts[0].Notify = []string{"SUCCESS"} },
		want: "ok",
	}, {
		name: "null sender",
		env:  func(e *envelope.Envelope) { e.From = "" },
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if tx.mail != "MAIL FROM:<>" {
				t.Errorf("MAIL %q", tx.mail)
			}
		},
	}, {
		name: "bare LF made CRLF for DATA",
		body: "Subject: lf\n\nline\n",
		want: "ok",
		check: func(t *testing.T, tx *txn) {
			if string(tx.data) != "Subject: lf\r\n\r\nline\r\n" {
				t.Errorf("data %q", tx.data)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", ext: tc.ext})
			d := h.deliverer(nil)
			rcpt := tc.rcpt
			if rcpt == "" {
				rcpt = "bob@dest.test"
			}
			env := newEnv(rcpt)
			if tc.env != nil {
				tc.env(env)
			}
			body := tc.body
			if body == "" {
				body = testMessage
			}
			out := deliverAll(d, env, body)
			checkOutcome(t, 0, out[0], tc.want)
			if tc.check != nil {
				tc.check(t, wantTxns(t, p, 1)[0])
			} else if out[0].Err != nil {
				wantTxns(t, p, 0)
			}
		})
	}
}

func TestEncodeORcpt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		utf8 bool
		want string
	}{
		{"rfc822;bob@example.com", false, "rfc822;bob@example.com"},
		{"rfc822;a+b=c@example.com", false, "rfc822;a+2Bb+3Dc@example.com"},
		{"utf-8;bøb@example.com", false, `utf-8;b\x{F8}b@example.com`},
		{"utf-8;bøb@example.com", true, "utf-8;bøb@example.com"},
		{"utf-8;a+b\\c@example.com", true, `utf-8;a\x{2B}b\x{5C}c@example.com`},
		{"no-semicolon", false, ""},
		{"bad type;x@y", false, ""},
	}
	for _, tc := range tests {
		got, ok := encodeORcpt(tc.in, tc.utf8)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("encodeORcpt(%q, %v) = %q, %v; want %q", tc.in, tc.utf8, got, ok, tc.want)
		}
	}
}

func TestScanBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body           string
		header8, body8 bool
	}{
		{"Subject: x\r\n\r\nbody\r\n", false, false},
		{"Subject: \xc3\xa9\r\n\r\nbody\r\n", true, false},
		{"Subject: x\r\n\r\nbod\xc3\xa9\r\n", false, true},
		{"Subject: x\n\nbod\xc3\xa9\n", false, true},
		{"Subject: x\r\n", false, false},
		{"\r\n\xff", false, true},
		{"", false, false},
	}
	for _, tc := range tests {
		s, err := scanBody(bytesBody(tc.body))
		if err != nil || s.header8 != tc.header8 || s.body8 != tc.body8 {
			t.Errorf("scanBody(%q) = %+v, %v; want header8 %v body8 %v", tc.body, s, err, tc.header8, tc.body8)
		}
	}
}
