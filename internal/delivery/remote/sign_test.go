package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/envelope"
)

// testKeys are an rsa and an ed25519 key of sender.test, and the records that publish them.
type testKeys struct {
	keys    []dkim.SigningKey
	records map[string][]string
}

var (
	testKeysOnce sync.Once
	testKeysVal  testKeys
)

func signingKeys(t *testing.T) testKeys {
	t.Helper()
	testKeysOnce.Do(func() { // an RSA key takes a while to make: once for every test
		testKeysVal.records = map[string][]string{}
		for _, a := range []dkim.Algorithm{dkim.RSA, dkim.Ed25519} {
			k, _, err := dkim.GenerateKey(a)
			if err != nil {
				panic(err)
			}
			txt, err := dkim.TXTValue(k)
			if err != nil {
				panic(err)
			}
			sel := "s-" + string(a)
			testKeysVal.keys = append(testKeysVal.keys, dkim.SigningKey{Domain: "sender.test", Selector: sel, Signer: k})
			testKeysVal.records[dkim.RecordName(sel, "sender.test")] = []string{txt}
		}
	})
	return testKeysVal
}

// recordsResolver is a dkim.Resolver over fixed records.
type recordsResolver map[string][]string

func (r recordsResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := r[name]; ok {
		return v, nil
	}
	return nil, dkim.ErrNoRecord
}

// TestDKIMSigning checks that what reaches the server carries a signature of what it received,
// for each active key of the From domain.
func TestDKIMSigning(t *testing.T) {
	t.Parallel()
	keys := signingKeys(t)
	source := func(_ context.Context, domain string) ([]dkim.SigningKey, error) {
		switch domain {
		case "sender.test":
			return keys.keys, nil
		case "broken.test":
			return nil, errors.New("store unreachable")
		}
		return nil, nil
	}
	const eightBit = "From: alice@sender.test\r\nTo: bob@dest.test\r\nSubject: cafe\r\n\r\ncaf\xc3\xa9\r\n"
	tests := []struct {
		name  string
		relay bool // through the relayhost, not by MX
		ext   []string
		env   func(*envelope.Envelope)
		body  string
		want  string // the results of the signatures received, "" for none
		data  func(string) bool
		log   string
	}{{
		name: "local From: signed with both keys",
		body: testMessage,
		want: "pass s-rsa rsa-sha256; pass s-ed25519 ed25519-sha256",
	}, {
		name:  "through the relayhost: signed",
		relay: true,
		body:  testMessage,
		want:  "pass s-rsa rsa-sha256; pass s-ed25519 ed25519-sha256",
	}, {
		name: "From a subdomain: signed by the parent domain that has keys",
		body: strings.Replace(testMessage, "alice@sender.test", "MAILER-DAEMON@mx.sender.test", 1),
		want: "pass s-rsa rsa-sha256; pass s-ed25519 ed25519-sha256",
	}, {
		name: "foreign From: not signed",
		body: strings.Replace(testMessage, "alice@sender.test", "alice@elsewhere.test", 1),
	}, {
		name: "converted to 7 bits, then signed",
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBit,
		want: "pass s-rsa rsa-sha256; pass s-ed25519 ed25519-sha256",
		data: func(d string) bool { return strings.Contains(d, "caf=C3=A9") },
	}, {
		name: "8BITMIME offered: signed as queued",
		ext:  []string{"8BITMIME"},
		env:  func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME },
		body: eightBit,
		want: "pass s-rsa rsa-sha256; pass s-ed25519 ed25519-sha256",
		data: func(d string) bool { return strings.HasSuffix(d, "\r\n\r\ncaf\xc3\xa9\r\n") },
	}, {
		name: "keys cannot be read: sent unsigned, logged",
		body: strings.Replace(testMessage, "alice@sender.test", "alice@broken.test", 1),
		log:  "DKIM signing failed, sent unsigned",
	}, {
		name: "no From: sent unsigned, logged",
		body: "To: bob@dest.test\r\n\r\nHello.\r\n",
		log:  "DKIM signing failed, sent unsigned",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if !tc.relay {
				h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
			}
			p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", ext: tc.ext})
			d := h.deliverer(func(o *Options) {
				o.DKIM = dkim.NewMessageSigner(source, time.Minute, time.Now)
				if tc.relay {
					o.Relayhost = "127.0.0.2:" + itoa(h.port)
				}
			})
			env := newEnv("bob@dest.test")
			if tc.env != nil {
				tc.env(env)
			}
			checkOutcome(t, 0, deliverAll(d, env, tc.body)[0], "ok")
			data := string(wantTxns(t, p, 1)[0].data)
			if got := signatureResults(t, data, keys.records); got != tc.want {
				t.Errorf("signatures %q, want %q\n%s", got, tc.want, data)
			}
			if tc.data != nil && !tc.data(data) {
				t.Errorf("data %q", data)
			}
			if tc.log != "" && !strings.Contains(h.logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, h.logs.String())
			}
		})
	}
}

// signatureResults verifies msg and sums its results up, "" when it has no signature.
func signatureResults(t *testing.T, msg string, records map[string][]string) string {
	t.Helper()
	v, err := dkim.Verify(context.Background(), strings.NewReader(msg), recordsResolver(records))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range v.Results {
		if r.Status == dkim.None {
			continue
		}
		out = append(out, string(r.Status)+" "+r.Selector+" "+r.Algorithm)
	}
	return strings.Join(out, "; ")
}

// TestDKIMSignedOnce checks that a message tried at several hosts is read for signing once.
func TestDKIMSignedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
	h.peer("127.0.0.2", &peer{name: "mx1.dest.test", mail: "451 4.3.0 try later"})
	p2 := h.peer("127.0.0.3", &peer{name: "mx2.dest.test"})
	s := &countingSigner{}
	d := h.deliverer(func(o *Options) { o.DKIM = s })
	checkOutcome(t, 0, deliverAll(d, newEnv("bob@dest.test"), testMessage)[0], "ok")
	if data := wantTxns(t, p2, 1)[0].data; !bytes.HasPrefix(data, []byte("DKIM-Signature: x\r\nFrom:")) {
		t.Errorf("data %q", data)
	}
	if s.n != 1 {
		t.Errorf("signed %d times, want 1", s.n)
	}
}

type countingSigner struct{ n int } // attempts of one pass run one after the other

func (s *countingSigner) Sign(context.Context, io.Reader) (string, error) {
	s.n++
	return "DKIM-Signature: x\r\n", nil
}
