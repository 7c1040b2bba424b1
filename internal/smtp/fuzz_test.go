package smtp_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// Seed lines from the interactive sessions in shared/seeds, as clients really type them.
var seedCommands = []string{
	"EHLO trogdor",
	"ehlo bob",
	"HELO host.example.com",
	"AUTH LOGIN",
	"a2VubmV0aC5idXJnZW5lcg==",
	"SW1CQjE5OTkh",
	"MAIL FROM: <kenneth@oeey.com>",
	"MAIL FROM: <test@host.example.com>",
	"RCPT TO: <kenneth@oeey.com>",
	"RCPT TO: <bob@example.com>",
	"mail from: me@mydomain.com",
	"rcpt to: you@externaldomain.com",
	"MAIL FROM:kenneth@oeey.com",
	"mail from:<@relay.example:kenneth@oeey.com>",
	`MAIL FROM:<"john doe"@oeey.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1`,
	"MAIL FROM:<kenneth@oeey.com> BODY=BINARYMIME SMTPUTF8",
	"RCPT TO:<Postmaster>",
	"RCPT TO:<bjørn@exämple.test> ORCPT=utf-8;bj+C3+B8rn@ex+C3+A4mple.test",
	"RCPT TO:<postmaster@[IPv6:::1]> NOTIFY=SUCCESS,FAILURE",
	"MAIL FROM:<>",
	"MAIL FROM:<kenneth@oeey.com",
	"MAIL FROM:<kenneth@@oeey.com>",
	`RCPT TO:<"a>b"@x>`,
	"DATA",
	"QUIT",
}

// Message texts for the DATA and text fuzzers: the seed message, dot-stuffing, and the SMTP
// smuggling sequences.
var seedTexts = []string{
	seedMessage + ".\r\n",
	"From: [Alice] <alice@geek.com>\r\nTo: <bob@example.com>\r\nDate: Mon, 12 Apr 2010 14:21:26 -0400\r\nSubject: Test Message\r\n\r\nHi there! This is supposed to be a real email...\r\n\r\nHave a good day!\r\nAlice\r\n.\r\nQUIT\r\n",
	"This is a test.\r\n\r\n.\r\n",
	".\r\n",
	"..\r\n.\r\n",
	"..x\r\n...\r\n.\r\nNOOP\r\n",
	"hello\n.\nMAIL FROM:<admin@bank.example>\r\n.\r\n",
	"hello\r.\rMAIL FROM:<admin@bank.example>\r\n.\r\n",
	"hello\n.\r\nMAIL FROM:<admin@bank.example>\r\n.\r\nQUIT\r\n",
	"hello\r\n.\nRCPT TO:<victim@example.com>\r\n.\r\n",
	"a\r\r\n.\r\n",
	"a\r\n.\r",
	strings.Repeat("x", 998) + "\r\n.\r\n",
	strings.Repeat("x", 999) + "\r\n.\r\n",
	".." + strings.Repeat("x", 997) + "\r\n.\r\n",
	strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n", 20) + ".\r\n",
	// NUL octets: refused in text, and a downstream that strips them must not find an end here.
	"hello\r\n.\x00\r\nMAIL FROM:<admin@bank.example>\r\n.\r\n",
	"hello\r\n\x00.\r\nRCPT TO:<victim@example.com>\r\n.\r\n",
	"a\x00b\r\n\x00\r\n.\r\n",
	"a\r\x00\n.\r\n",
}

// refReadLines gives the expected outcomes of ReadLine on data, derived from the rules directly.
func refReadLines(data []byte, max int) []readResult {
	var out []readResult
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(data) == 0 {
				return append(out, fails(io.EOF))
			}
			return append(out, fails(io.ErrUnexpectedEOF))
		}
		line := data[:i+1]
		data = data[i+1:]
		switch {
		case !bytes.HasSuffix(line, []byte("\r\n")):
			// A bare LF is reported even for a line too long: it splits the stream.
			out = append(out, fails(smtp.ErrBareLF))
		case len(line) > max:
			out = append(out, fails(smtp.ErrLineTooLong))
		case bytes.IndexByte(line[:len(line)-2], '\r') >= 0:
			out = append(out, fails(smtp.ErrBareCR))
		default:
			out = append(out, ok(string(line[:len(line)-2])))
		}
	}
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte(strings.Join(seedCommands, "\r\n")+"\r\n"), uint16(smtp.MaxMailLine), false)
	for _, c := range seedCommands {
		f.Add([]byte(c+"\r\n"), uint16(32), true)
	}
	f.Add([]byte("NOOP\nQUIT\r\n"), uint16(512), false)
	f.Add([]byte("NO\x00OP\r\nEHLO a\x00\nQUIT\r\n"), uint16(512), true)
	f.Add([]byte(strings.Repeat("y", 60)+"\nQUIT\r\n"), uint16(40), true)
	f.Add([]byte("\r\r\nNO\rOP\r\nQU"), uint16(512), true)
	f.Add([]byte(strings.Repeat("x", 100)+"\r\nQUIT\r\n"), uint16(40), true)
	f.Add([]byte(""), uint16(10), false)
	f.Fuzz(func(t *testing.T, data []byte, max uint16, small bool) {
		limit := int(max)%2048 + 2
		r := bufio.NewReader(bytes.NewReader(data))
		if small {
			r = bufio.NewReaderSize(bytes.NewReader(data), 16)
		}
		var scratch []byte
		for i, want := range refReadLines(data, limit) {
			line, err := smtp.ReadLine(r, limit, &scratch)
			if !errors.Is(err, want.err) {
				t.Fatalf("read %d: err = %v, want %v", i, err, want.err)
			}
			if err == nil && string(line) != want.line {
				t.Fatalf("read %d: line = %q, want %q", i, line, want.line)
			}
		}
	})
}

// reparse checks that a parsed address renders to text that parses back to the same address,
// through the same parser and wrapped in a path argument.
func reparse(t *testing.T, a smtp.Address, keyword string, parse func(string) (smtp.Address, error)) {
	t.Helper()
	s := a.String()
	b, err := parse(s)
	if err != nil || b != a {
		t.Fatalf("%+v renders as %q, which parses to (%+v, %v)", a, s, b, err)
	}
	pa, err := smtp.ParsePathArg(keyword+"<"+s+"> SIZE=1", keyword)
	if err != nil || pa.Path != s || len(pa.Params) != 1 {
		t.Fatalf("path <%s> parses to (%+v, %v)", s, pa, err)
	}
}

func FuzzParsePathArg(f *testing.F) {
	for _, c := range seedCommands {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, line string) {
		verb, arg := smtp.ParseCommand(line)
		for _, kw := range []string{"FROM:", "TO:"} {
			if verb == "MAIL" && kw != "FROM:" || verb == "RCPT" && kw != "TO:" {
				continue
			}
			pa, err := smtp.ParsePathArg(arg, kw)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for _, p := range pa.Params {
				if p.Key != strings.ToUpper(p.Key) || seen[p.Key] || strings.Contains(p.Value, "=") || p.HasValue != (p.Value != "") {
					t.Fatalf("bad params %+v", pa.Params)
				}
				seen[p.Key] = true
			}
			parse := smtp.ParseReversePath
			if kw == "TO:" {
				parse = smtp.ParseForwardPath
			}
			a, err := parse(pa.Path)
			if err != nil {
				continue
			}
			reparse(t, a, kw, parse)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"kenneth@oeey.com", "test@host.example.com", "bob@example.com", "me@mydomain.com",
		"Kenneth.Burgener@OEEY.Com", `"john doe"@oeey.com`, `"a\"b\\c"@x.test`, `"a@b"@x`,
		"bjørn@exämple.test", "用户@例子.广告", "postmaster@[127.0.0.1]", "a@[IPv6:::1]",
		"a@[IPv6:::ffff:192.0.2.1]", "a..b@x", "a@-x.com", "a@x.", "\xff@x", "kenneth@@oeey.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := smtp.ParseAddress(s)
		if err != nil {
			if !errors.Is(err, smtp.ErrBadAddress) {
				t.Fatalf("error %v does not wrap ErrBadAddress", err)
			}
			return
		}
		if a.Local == "" || len(a.Local) > smtp.MaxLocalPart || a.Domain == "" || len(a.Domain) > smtp.MaxDomain {
			t.Fatalf("%q parses to out-of-bounds %+v", s, a)
		}
		if d, err := smtp.ParseDomain(a.Domain); err != nil || d != a.Domain {
			t.Fatalf("domain %q of %q does not parse to itself: (%q, %v)", a.Domain, s, d, err)
		}
		reparse(t, a, "TO:", smtp.ParseAddress)
	})
}

// refData is the expected outcome of ReadData, derived line by line from the rules.
type refData struct {
	consumed int     // octets up to and including the terminator; -1 when there is none
	body     []byte  // unstuffed text
	faults   []error // every content fault present (ReadData reports the first)
}

func refReadData(data []byte, maxSize int64) refData {
	ref := refData{consumed: -1}
	bol := true
	for pos := 0; ; {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			return ref
		}
		line := data[pos : pos+i+1]
		pos += i + 1
		if bol && string(line) == ".\r\n" {
			ref.consumed = pos
			if int64(len(ref.body)) > maxSize {
				ref.faults = append(ref.faults, smtp.ErrTooBig)
			}
			return ref
		}
		if bol && line[0] == '.' {
			line = line[1:]
		}
		crlf := bytes.HasSuffix(line, []byte("\r\n"))
		if !crlf {
			ref.faults = append(ref.faults, smtp.ErrBareLF)
		}
		if bytes.IndexByte(bytes.TrimSuffix(line, []byte("\r\n")), '\r') >= 0 {
			ref.faults = append(ref.faults, smtp.ErrBareCR)
		}
		if len(line) > smtp.MaxTextLine {
			ref.faults = append(ref.faults, smtp.ErrLineTooLong)
		}
		if bytes.IndexByte(line, 0) >= 0 {
			ref.faults = append(ref.faults, smtp.ErrNUL)
		}
		ref.body = append(ref.body, line...)
		bol = crlf
	}
}

// dotStuff is what a client does before DATA (RFC 5321 §4.5.2).
func dotStuff(body []byte) []byte {
	var out []byte
	bol := true
	for _, c := range body {
		if bol && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		bol = c == '\n'
	}
	return out
}

// isStuffed reports whether every line of text that starts with a dot starts with two.
func isStuffed(text []byte) bool {
	for _, line := range bytes.SplitAfter(text, []byte("\r\n")) {
		if len(line) > 0 && line[0] == '.' && !bytes.HasPrefix(line, []byte("..")) {
			return false
		}
	}
	return true
}

func FuzzReadData(f *testing.F) {
	for _, s := range seedTexts {
		f.Add([]byte(s), uint16(2000), false)
		f.Add([]byte(s), uint16(20), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16, small bool) {
		maxSize := int64(max)
		r := bufio.NewReader(bytes.NewReader(data))
		if small {
			r = bufio.NewReaderSize(bytes.NewReader(data), 16)
		}
		var out bytes.Buffer
		n, err := smtp.ReadData(r, &out, maxSize)
		if n != int64(out.Len()) {
			t.Fatalf("n = %d, but %d octets were written", n, out.Len())
		}
		if out.Len() > int(maxSize) {
			t.Fatalf("wrote %d octets, over maxSize %d", out.Len(), maxSize)
		}
		ref := refReadData(data, maxSize)
		if ref.consumed < 0 {
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("no terminator, but err = %v", err)
			}
			return
		}
		restData, _ := io.ReadAll(r)
		if consumed := len(data) - len(restData); consumed != ref.consumed {
			t.Fatalf("consumed %d octets, want %d (through the first CRLF.CRLF)", consumed, ref.consumed)
		}
		if len(ref.faults) == 0 {
			if err != nil {
				t.Fatalf("err = %v for valid text", err)
			}
		} else if !containsErr(ref.faults, err) {
			t.Fatalf("err = %v, want one of %v", err, ref.faults)
		}
		if err != nil {
			return
		}
		body := out.Bytes()
		if !bytes.Equal(body, ref.body) {
			t.Fatalf("body = %q, want %q", body, ref.body)
		}
		consumed := data[:ref.consumed]
		if !bytes.HasSuffix(append([]byte("\r\n"), consumed...), []byte("\r\n.\r\n")) {
			t.Fatalf("data ended without CRLF.CRLF: %q", consumed)
		}
		var c smtp.TextChecker
		c.Write(body)
		if c.Finish() != nil || c.Unterminated() {
			t.Fatalf("body %q holds a bare CR or LF, a NUL or a long line: %v", body, c.Err())
		}
		// For a properly stuffed input, stuffing the body again gives back the input exactly.
		if text := consumed[:len(consumed)-len(".\r\n")]; isStuffed(text) {
			if restuffed := dotStuff(body); !bytes.Equal(restuffed, text) {
				t.Fatalf("re-stuffed body %q differs from the input %q", restuffed, text)
			}
		}
	})
}

func containsErr(errs []error, err error) bool {
	for _, e := range errs {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzTextChecker(f *testing.F) {
	for _, s := range seedTexts {
		f.Add([]byte(s), uint16(1), uint16(5))
	}
	f.Add([]byte("a\r"), uint16(1), uint16(2))
	f.Add([]byte("\r\r\n"), uint16(1), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, i, j uint16) {
		var whole smtp.TextChecker
		whole.Write(data)

		a := int(i) % (len(data) + 1)
		b := a + int(j)%(len(data)-a+1)
		var split smtp.TextChecker
		for _, p := range [][]byte{data[:a], data[a:b], data[b:]} {
			split.Write(p)
		}
		if whole.Err() != split.Err() || whole.Unterminated() != split.Unterminated() {
			t.Fatalf("split at %d,%d: (%v, %v), whole: (%v, %v)", a, b, split.Err(), split.Unterminated(), whole.Err(), whole.Unterminated())
		}
		werr, serr := whole.Finish(), split.Finish()
		if werr != serr {
			t.Fatalf("split at %d,%d: Finish %v, whole: %v", a, b, serr, werr)
		}
		// The checker agrees with the line reader: text is valid iff every line reads and no
		// octet is a NUL (which the line reader passes on).
		valid := bytes.IndexByte(data, 0) < 0
		lr := bufio.NewReader(bytes.NewReader(data))
		var scratch []byte
		for {
			_, err := smtp.ReadLine(lr, smtp.MaxTextLine, &scratch)
			if err == io.EOF {
				break
			}
			if err == io.ErrUnexpectedEOF {
				// The unterminated tail: only a CR in it is a fault, and only a long tail.
				i := bytes.LastIndexByte(data, '\n') + 1
				tail := data[i:]
				if bytes.IndexByte(tail, '\r') >= 0 || len(tail) > smtp.MaxTextLine {
					valid = false
				}
				if !whole.Unterminated() {
					t.Fatalf("tail %q is not reported as unterminated", tail)
				}
				break
			}
			if err != nil {
				valid = false
			}
		}
		if valid != (werr == nil) {
			t.Fatalf("line reader says valid=%v, checker says %v", valid, werr)
		}
	})
}

func FuzzXtext(f *testing.F) {
	for _, s := range []string{"QQ+2B1", "+2B", "rfc822;bob+2Blists@example.com", "+2b", "a=b", "", "+C3+B8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if dec, err := smtp.DecodeXtext(s); err == nil {
			again, err := smtp.DecodeXtext(smtp.EncodeXtext(dec))
			if err != nil || again != dec {
				t.Fatalf("%q decodes to %q, which does not survive encoding: (%q, %v)", s, dec, again, err)
			}
		}
		dec, err := smtp.DecodeXtext(smtp.EncodeXtext(s))
		if err != nil || dec != s {
			t.Fatalf("EncodeXtext(%q) decodes to (%q, %v)", s, dec, err)
		}
	})
}
