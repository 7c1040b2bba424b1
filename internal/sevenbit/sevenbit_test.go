package sevenbit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
)

// crlf writes a message the way the queue holds it: CRLF line ends.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestConvert(t *testing.T) {
	tests := []struct {
		name    string
		in, out string
		err     error
	}{{
		name: "7-bit: untouched",
		in:   "Subject: hi\n\nplain ascii\n",
		out:  "Subject: hi\n\nplain ascii\n",
	}, {
		name: "8-bit text part: quoted-printable",
		in: `From: a@example.test
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus Köln
= sign
`,
		out: `From: a@example.test
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln
=3D sign
`,
	}, {
		name: "no MIME labels at all: said to be unknown 8-bit text",
		in:   "Subject: old\n\nna\xefve\n",
		out: `Subject: old
MIME-Version: 1.0
Content-Type: text/plain; charset=unknown-8bit
Content-Transfer-Encoding: quoted-printable

na=EFve
`,
	}, {
		name: "non-text part: base64",
		in: `MIME-Version: 1.0
Content-Type: application/octet-stream

` + "\x00\x01\xff\xfe" + `
`,
		out: `MIME-Version: 1.0
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAH//g==
`,
	}, {
		name: "multipart: only the 8-bit part changes, the multipart is 7bit",
		in: `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"
Content-Transfer-Encoding: 8bit

preamble
--b1
Content-Type: text/plain; charset=us-ascii

ascii part
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>café</p>
--b1--
epilogue
`,
		out: `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"
Content-Transfer-Encoding: 7bit

preamble
--b1
Content-Type: text/plain; charset=us-ascii

ascii part
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>caf=C3=A9</p>
--b1--
epilogue
`,
	}, {
		name: "nested multipart and an attached message",
		in: `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

ü
--inner--

--outer
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Subject: inside
Content-Type: text/plain; charset=utf-8

ö
--outer--
`,
		out: `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer
Content-Transfer-Encoding: 7bit

--outer
Content-Type: multipart/alternative; boundary=inner
Content-Transfer-Encoding: 7bit

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

=C3=BC
--inner--

--outer
Content-Type: message/rfc822
Content-Transfer-Encoding: 7bit

Subject: inside
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

=C3=B6
--outer--
`,
	}, {
		name: "a folded Content-Transfer-Encoding is replaced whole",
		in:   "Content-Type: text/plain;\n charset=utf-8\nContent-Transfer-Encoding:\n 8bit\nX: y\n\né\n",
		out:  "Content-Type: text/plain;\n charset=utf-8\nX: y\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9\n",
	}, {
		name: "long 8-bit lines get soft breaks",
		in:   "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" + strings.Repeat("é", 40) + "\n",
		// Lines of at most 76 characters; a break may fall between the octets of a character,
		// which decoders join again.
		out: "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
			strings.Repeat("=C3=A9", 12) + "=C3=\n" + strings.Repeat("=A9=C3", 12) + "=A9=\n" +
			strings.Repeat("=C3=A9", 12) + "=C3=\n=A9=C3=A9=C3=A9\n",
	}, {
		name: "an invalid Content-Type is text/plain (RFC 2045 §5.2)",
		in:   "MIME-Version: 1.0\nContent-Type: text/plain; charset=\"utf-8\"; charset=x\n\n\xc3\xa9\n",
		out:  "MIME-Version: 1.0\nContent-Type: text/plain; charset=\"utf-8\"; charset=x\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9\n",
	}, {
		name: "8-bit header: refused",
		in:   "Subject: Grüße\n\nbody ü\n",
		err:  ErrHeader,
	}, {
		name: "8-bit header in a part: refused",
		in:   "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Disposition: attachment; filename=\"ä.txt\"\n\nä\n--b--\n",
		err:  ErrHeader,
	}, {
		name: "8-bit in a part that says base64: refused",
		in:   "MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\nü\n",
		err:  ErrEncoded,
	}, {
		name: "8-bit preamble: refused",
		in:   "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\nü\n--b\n\nx\n--b--\n",
		err:  ErrStructure,
	}, {
		name: "multipart without any delimiter: refused",
		in:   "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\nü\n",
		err:  ErrStructure,
	}, {
		name: "message/partial may not be encoded: refused",
		in:   "MIME-Version: 1.0\nContent-Type: message/partial; id=x; number=1\n\nü\n",
		err:  ErrStructure,
	}, {
		name: "an encoded line that would look like the delimiter: refused",
		in: "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n" +
			strings.Repeat("x", 75) + "--b ü\n--b--\n",
		err: ErrStructure,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Convert([]byte(crlf(tc.in)))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			if want := crlf(tc.out); string(got) != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if Has8Bit(got) {
				t.Error("output has 8-bit octets")
			}
		})
	}
}

// TestConvertDecodes reads the converted message back with Go's MIME readers: every part
// decodes to the octets it had.
func TestConvertDecodes(t *testing.T) {
	parts := []struct{ typ, body string }{
		{"text/plain; charset=utf-8", "Grüße, \tmit = und Tab\r\nzweite Zeile  \r\n" + strings.Repeat("ä", 100)},
		{"application/octet-stream", "\x00\xff\r\n\x80binary-ish\n"},
		{"text/plain; charset=us-ascii", "just ascii"},
	}
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_xyz\"\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--=_xyz\r\nContent-Type: " + p.typ + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + p.body + "\r\n")
	}
	b.WriteString("--=_xyz--\r\n")
	out, err := Convert([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i, want := range parts {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		var r io.Reader = p
		switch cte := p.Header.Get("Content-Transfer-Encoding"); cte {
		case "quoted-printable":
			r = quotedprintable.NewReader(p)
		case "base64":
			r = base64Reader(p)
		case "8bit":
			if want.body != "just ascii" {
				t.Errorf("part %d still says 8bit", i)
			}
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if string(got) != want.body {
			t.Errorf("part %d decodes to %q, want %q", i, got, want.body)
		}
	}
}

func FuzzConvert(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nü\r\n",
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nä\r\n--b--\r\n",
		"Content-Type: message/rfc822\r\n\r\nSubject: y\r\n\r\n\xff\r\n",
		"Content-Type: multipart/digest; boundary=q\r\n\r\n--q\r\n\r\nA: b\r\n\r\n\x80\r\n--q",
		"\r\n\xe9",
		"X\xe9",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Convert(in)
		if err != nil {
			return
		}
		if Has8Bit(out) {
			t.Fatalf("8-bit output %q", out)
		}
		if !Has8Bit(in) && !bytes.Equal(in, out) {
			t.Fatalf("7-bit input changed: %q -> %q", in, out)
		}
	})
}

func base64Reader(r io.Reader) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, &lineStripper{r: r})
}

// lineStripper drops CR and LF, which base64.NewDecoder does not skip by itself in all versions.
type lineStripper struct{ r io.Reader }

func (l *lineStripper) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// BenchmarkConvert converts a 1 MiB message: an 8-bit text part and an 8-bit attachment.
func BenchmarkConvert(b *testing.B) {
	text := strings.Repeat("Grüße aus Köln, = und ein langer Satz, der weitergeht.\r\n", 8000)
	bin := strings.Repeat("\x00\x80\xff binary\r\n", 20000)
	msg := []byte("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
		"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + bin + "--b--\r\n")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Convert(msg); err != nil {
			b.Fatal(err)
		}
	}
}
