package smtpclient

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
)

// closedConn is a net.Conn that only takes Close, for reading replies from a string.
type closedConn struct{ net.Conn }

func (closedConn) Close() error { return nil }

// FuzzReadReply reads whatever a server may send as replies: it never panics, every reply it
// returns has a valid code and is within the bounds, and the first error breaks the client.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example.test ESMTP\r\n",
		"250-oeey.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH CRAM-MD5 LOGIN\r\n250-AUTH=CRAM-MD5 LOGIN\r\n250 8BITMIME\r\n",
		"550 5.1.1 Bad destination mailbox address (you@externaldomain.com).\r\n",
		"250 2.6.0 <SMTP0146bXmdMJOtd3r00028154@mail.kuku.co.il> Queued mail for\r\n",
		"334 VXNlcm5hbWU6\r\n334 \r\n235 2.7.0 ok\r\n",
		"250-a\r\n251 b\r\n",
		"250 ok\n",
		"250\r\n2500\r\n",
		"421 4.7.0 bye\r\n250 after\r\n",
		strings.Repeat("250-x\r\n", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		opts := Options{MaxReplyLine: 128, MaxReplyLines: 8, MaxReplyBytes: 512}
		opts.setDefaults()
		c := &Client{opts: opts, conn: closedConn{}, br: bufio.NewReaderSize(strings.NewReader(in), 16)}
		for range 100 {
			r, err := c.readReply(CmdEHLO)
			if err != nil {
				if c.broken == nil {
					t.Fatalf("error %v did not break the client", err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Code != 0 || e.Permanent {
					t.Fatalf("error %#v", err)
				}
				return
			}
			if r.Code < 200 || r.Code > 599 {
				t.Fatalf("code %d", r.Code)
			}
			if n := strings.Count(r.Text, "\n") + 1; n > opts.MaxReplyLines || len(r.Text) > opts.MaxReplyBytes {
				t.Fatalf("reply of %d lines, %d octets", n, len(r.Text))
			}
			if r.Enh != "" && !strings.HasPrefix(r.Enhanced(), string(rune('0'+r.Code/100))) {
				t.Fatalf("enhanced %q with code %d", r.Enhanced(), r.Code)
			}
			parseExtensions(r.Text)
		}
	})
}
