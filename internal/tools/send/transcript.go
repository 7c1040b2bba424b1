package send

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// Prefixes of the transcript, as swaks prints them: the direction, and "~" once TLS is on.
const (
	prefixServer    = "<-  "
	prefixServerTLS = "<~  "
	prefixClient    = " -> "
	prefixClientTLS = " ~> "
	prefixNote      = "*** "
	prefixAnnot     = " ## "
	// mask stands in for the password, and for a line that carries it.
	mask = "********"
)

// transcript renders a session for people: every line sent and received, notes, and for AUTH
// the decoded meaning of each base64 line. The password never appears, in any encoding, unless
// showSecrets is set: a line that carries it is masked whole, and so is every annotation
// that would show it.
type transcript struct {
	w           io.Writer
	password    string
	showSecrets bool
	err         error // the first write error

	auth authState
}

// authState follows an AUTH exchange through the lines, to annotate them.
type authState struct {
	active bool
	mech   string
	prompt string // the last server challenge, decoded
}

func (t *transcript) println(prefix, s string) {
	if t.err != nil {
		return
	}
	_, t.err = io.WriteString(t.w, prefix+s+"\n")
}

// note prints a "***" line.
func (t *transcript) note(format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		t.println(prefixNote, l)
	}
}

// trace is the smtpclient.TraceFunc.
func (t *transcript) trace(dir smtpclient.Direction, tls bool, line string) {
	if dir == smtpclient.Received {
		p := prefixServer
		if tls {
			p = prefixServerTLS
		}
		if t.auth.active {
			line = t.scrub(line)
		}
		t.println(p, line)
		t.server(line)
		return
	}
	p := prefixClient
	if tls {
		p = prefixClientTLS
	}
	shown, annot := t.client(line)
	t.println(p, shown)
	for _, a := range annot {
		t.println(prefixAnnot, a)
	}
}

// server follows the server's side of an AUTH exchange and annotates its challenges.
func (t *transcript) server(line string) {
	if !t.auth.active {
		return
	}
	b64, ok := strings.CutPrefix(line, "334 ")
	if !ok {
		if line != "334" {
			t.auth.active = false // 235, 535, ...: the exchange is over
		}
		t.auth.prompt = ""
		return
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		t.println(prefixAnnot, "(not base64)")
		return
	}
	t.auth.prompt = string(dec)
	if len(dec) == 0 || t.auth.mech == "LOGIN" {
		return // LOGIN's prompts are named in the answers' annotations
	}
	t.println(prefixAnnot, t.scrub(describe(t.auth.mech, dec, false)))
}

// client returns how to show a line the client sent, and its annotations.
func (t *transcript) client(line string) (string, []string) {
	if !t.auth.active {
		verb, rest, _ := strings.Cut(line, " ")
		if !strings.EqualFold(verb, "AUTH") {
			return line, nil
		}
		mech, ir, hasIR := strings.Cut(rest, " ")
		t.auth = authState{active: true, mech: strings.ToUpper(mech)}
		if !hasIR {
			return line, nil
		}
		shown, annot := t.response(ir)
		return verb + " " + mech + " " + shown, annot
	}
	if line == "*" {
		return line, []string{"(the client cancels the exchange)"}
	}
	return t.response(line)
}

// response decodes one base64 client response of the current exchange.
func (t *transcript) response(b64 string) (string, []string) {
	if b64 == "=" || b64 == "" {
		return b64, []string{"(empty response)"}
	}
	dec, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return t.scrub(b64), []string{"(not base64)"}
	}
	shown := b64
	if t.carriesPassword(dec) {
		shown = mask
	}
	var annot string
	if t.auth.mech == "LOGIN" {
		label := strings.TrimRight(t.auth.prompt, ":\x00 ")
		value := printable(dec)
		if strings.EqualFold(label, "password") {
			value = t.secret(value)
		}
		if label == "" || !utf8.ValidString(label) || strings.ContainsFunc(label, isControl) {
			label = "Response"
		}
		annot = label + ": " + value
	} else {
		annot = describe(t.auth.mech, dec, true)
	}
	return shown, []string{t.scrub(annot)}
}

// carriesPassword reports whether a decoded response holds the password.
func (t *transcript) carriesPassword(dec []byte) bool {
	return !t.showSecrets && t.password != "" && bytes.Contains(dec, []byte(t.password))
}

// secret masks a value that is the password (or holds it).
func (t *transcript) secret(s string) string {
	if t.showSecrets {
		return s
	}
	return mask
}

// scrub masks the password wherever it still appears in an annotation: the last line of
// defence, whatever a mechanism's decoder printed.
func (t *transcript) scrub(s string) string {
	if t.showSecrets || t.password == "" {
		return s
	}
	s = strings.ReplaceAll(s, t.password, mask)
	if p := printable([]byte(t.password)); p != t.password {
		s = strings.ReplaceAll(s, p, mask)
	}
	return s
}

// describe explains a decoded AUTH message of mech: fromClient tells which side sent it.
func describe(mech string, dec []byte, fromClient bool) string {
	switch {
	case mech == "PLAIN" && fromClient:
		// RFC 4616: authzid NUL authcid NUL passwd; shown like the seeds' "\000***\000***".
		parts := bytes.SplitN(dec, []byte{0}, 3)
		if len(parts) == 3 {
			return printable(parts[0]) + `\0` + printable(parts[1]) + `\0` + printable(parts[2])
		}
	case mech == "NTLM":
		if s, ok := describeNTLM(dec); ok {
			return s
		}
	case mech == sasl.GSSAPI:
		if s, ok := sasl.DescribeGSSAPIToken(dec); ok {
			return s
		}
	}
	return printable(dec)
}

// printable shows octets as text: NUL as \0 and other controls as \xNN; binary data is
// summarised.
func printable(b []byte) string {
	if !utf8.Valid(b) {
		return fmt.Sprintf("(%d octets of binary data)", len(b))
	}
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r == 0:
			sb.WriteString(`\0`)
		case isControl(r):
			fmt.Fprintf(&sb, `\x%02X`, r)
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// describeNTLM names an NTLM message (MS-NLMP §2.2.1) and, for the AUTHENTICATE_MESSAGE, the
// names it carries and the kind of response.
func describeNTLM(b []byte) (string, bool) {
	if len(b) < 12 || string(b[:8]) != "NTLMSSP\x00" {
		return "", false
	}
	switch binary.LittleEndian.Uint32(b[8:]) {
	case 1:
		return "NTLM NEGOTIATE_MESSAGE", true
	case 2:
		s := "NTLM CHALLENGE_MESSAGE"
		if len(b) >= 32 {
			s += fmt.Sprintf(", server challenge %x", b[24:32])
		}
		return s, true
	case 3:
		if len(b) < 64 {
			return "NTLM AUTHENTICATE_MESSAGE (truncated)", true
		}
		unicode := binary.LittleEndian.Uint32(b[60:])&1 != 0
		field := func(off int) []byte {
			n, o := int(binary.LittleEndian.Uint16(b[off:])), int(binary.LittleEndian.Uint32(b[off+4:]))
			if o < 0 || n < 0 || o+n > len(b) {
				return nil
			}
			return b[o : o+n]
		}
		str := func(off int) string {
			f := field(off)
			if !unicode {
				return printable(latin1(f))
			}
			u := make([]uint16, len(f)/2)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(f[2*i:])
			}
			return printable([]byte(string(utf16.Decode(u))))
		}
		kind := "NTLMv2"
		if len(field(20)) == 24 {
			kind = "NTLMv1"
		}
		return fmt.Sprintf("NTLM AUTHENTICATE_MESSAGE: user %q, domain %q, workstation %q, %s response",
			str(36), str(28), str(44), kind), true
	}
	return "NTLM message of unknown type", true
}

func latin1(b []byte) []byte {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return []byte(string(r))
}
