// Package authstr makes and explains SMTP AUTH strings by hand, as gen-auth, `base64` and
// hand-written cram-md5 scripts do: the library behind `tern auth`.
//
// Each mechanism is a function that returns an Output: the lines the client sends, in base64,
// one per SMTP line (after "AUTH MECH " or in answer to a 334), and Descriptions of the inputs
// and of each line, for --explain. SCRAM, which needs the server's answers, is a small state
// machine (Scram). Decode takes any base64 string apart and says which mechanism's message it
// is and what its fields mean.
//
// The SASL computations are package sasl's client halves; this package adds the forms people
// type (a challenge in base64 or raw, a "334 " copied along with it), the base64 framing and
// the descriptions. It does no I/O: reading passwords and server lines is the command's
// business. Passwords and tokens never appear in a Description unless Options.ShowSecrets.
package authstr

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Options apply to every function of the package.
type Options struct {
	// ShowSecrets puts passwords and tokens into Descriptions; by default they are masked.
	ShowSecrets bool
}

// Output is one step of a mechanism.
type Output struct {
	// Lines are what the client sends, base64-encoded, one per SMTP line, in order. An empty
	// line is an empty response (what answers a server's final data).
	Lines []string
	// Explain describes the inputs and each line, in order: what --explain shows.
	Explain []Description
}

// Description says what a message (or a set of inputs) is, field by field.
type Description struct {
	// Title names the thing, with the RFC section that defines it.
	Title string
	// Text is the message as one line of text (see Escape), secrets masked; "" for inputs.
	Text string
	// Fields are its parts, in order. A field without a name continues the one before.
	Fields []Field
	// Notes are remarks: weaknesses, what a server will make of it, what to do next.
	Notes []string
}

// Field is one named part of a Description.
type Field struct {
	Name, Value string
}

// add appends a field.
func (d *Description) add(name, value string) { d.Fields = append(d.Fields, Field{name, value}) }

// note appends a note.
func (d *Description) note(format string, args ...any) {
	d.Notes = append(d.Notes, fmt.Sprintf(format, args...))
}

// Render formats d, each line starting with prefix: the title, then "name: value" lines
// (the text first, when there is one), then the notes.
func (d Description) Render(prefix string) string {
	fields := d.Fields
	if d.Text != "" {
		fields = append([]Field{{"text", d.Text}}, fields...)
	}
	width := 0
	for _, f := range fields {
		width = max(width, len(f.Name)+1)
	}
	var b strings.Builder
	b.WriteString(prefix + d.Title + "\n")
	for _, f := range fields {
		label := f.Name + ":"
		if f.Name == "" {
			label = ""
		}
		fmt.Fprintf(&b, "%s  %-*s %s\n", prefix, width, label, f.Value)
	}
	for _, n := range d.Notes {
		fmt.Fprintf(&b, "%s  note: %s\n", prefix, n)
	}
	return b.String()
}

// FormatExplain is what --explain prints (on standard error): every description, its lines
// starting with "## " as in the seeds' annotated transcripts.
func FormatExplain(ds []Description) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Render("## "))
	}
	return b.String()
}

// FormatDecode is what `tern auth decode` prints: the decoded message on the first line, as
// text (so that `head -1` gives just that), then what it is.
func FormatDecode(d Description) string {
	text := d.Text
	d.Text = ""
	return text + "\n" + d.Render("")
}

// masked is what stands for a secret in a Description: the seeds' "***".
const masked = "***"

// secret returns s, or masked unless o.ShowSecrets.
func (o Options) secret(s string) string {
	if o.ShowSecrets {
		return Escape([]byte(s))
	}
	return masked
}

// secretField describes a secret: masked, with its length, or shown.
func (o Options) secretField(s string) string {
	if o.ShowSecrets {
		return Escape([]byte(s))
	}
	return fmt.Sprintf("%s (%d octets; --show-secrets shows it)", masked, len(s))
}

// Escape returns b as one line of text: UTF-8 characters as they are, NUL as \0 (the seeds
// write "\000"), \t \r \n, a backslash doubled, and any other control character, invalid
// UTF-8 octet or unprintable character as \xHH or \uHHHH. Unescape reverses it.
func Escape(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&s, `\x%02x`, b[0])
		case r == 0:
			s.WriteString(`\0`)
		case r == '\\':
			s.WriteString(`\\`)
		case r == '\t':
			s.WriteString(`\t`)
		case r == '\r':
			s.WriteString(`\r`)
		case r == '\n':
			s.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&s, `\x%02x`, r)
		case !unicode.IsPrint(r) && r <= 0xffff:
			fmt.Fprintf(&s, `\u%04x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&s, `\U%08x`, r)
		default:
			s.WriteRune(r)
		}
		b = b[n:]
	}
	return s.String()
}

// Unescape reads the escapes Escape writes (\0, \\, \t, \r, \n, \xHH, \uHHHH, \UHHHHHHHH), so
// that `tern auth encode --escapes '\0user\0pass'` makes a PLAIN string. \0 is always one NUL
// octet, whatever follows.
func Unescape(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New(`a lone \ at the end (write \\ for a backslash)`)
		}
		i++
		switch c := s[i]; c {
		case '0':
			b = append(b, 0)
		case '\\':
			b = append(b, '\\')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			if i+n >= len(s) {
				return nil, fmt.Errorf(`\%c needs %d hex digits`, c, n)
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil {
				return nil, fmt.Errorf(`\%c needs %d hex digits`, c, n)
			}
			if c == 'x' {
				b = append(b, byte(v))
			} else {
				if !utf8.ValidRune(rune(v)) {
					return nil, fmt.Errorf(`\%c%s is not a Unicode character`, c, s[i+1:i+1+n])
				}
				b = utf8.AppendRune(b, rune(v))
			}
			i += n
		default:
			return nil, fmt.Errorf(`unknown escape \%c (write \\ for a backslash)`, c)
		}
	}
	return b, nil
}

// Encode is `tern auth encode`: s in base64.
func Encode(s []byte) string { return base64.StdEncoding.EncodeToString(s) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// maxInput bounds what any function here decodes: longer than any SASL message tern knows
// (an NTLM AUTHENTICATE_MESSAGE is a few hundred octets, a DIGEST-MD5 response under 4096).
const maxInput = 64 << 10

// ErrNotBase64 is returned for input that should be base64 and is not.
var ErrNotBase64 = errors.New("authstr: not base64")

// notBase64 is ErrNotBase64 with what was wrong, worded for the person who typed it (tern auth
// prints it as it is: no package prefix).
type notBase64 struct{ detail string }

func (e *notBase64) Error() string        { return "not base64: " + e.detail }
func (e *notBase64) Is(target error) bool { return target == ErrNotBase64 }

// trimReply drops what people copy along with a server's message: surrounding space, and the
// "334 " of the reply line.
func trimReply(s string) string {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "334"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '-') {
		s = strings.TrimSpace(rest[min(1, len(rest)):])
	}
	return s
}

// decodeBase64 decodes s, with or without padding, ignoring white space inside (base64 copied
// from a document that wrapped it).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if len(s) > maxInput*4/3+4 {
		return nil, &notBase64{fmt.Sprintf("longer than %d octets", maxInput)}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, &notBase64{fmt.Sprintf("%q", truncate(s))}
	}
	return b, nil
}

// serverMessage is a message from the server as the user typed it: base64 (after a "334 "),
// or raw text when raw says the string is the mechanism's raw form. asRaw tells which.
func serverMessage(s string, raw func(string) bool) (msg []byte, asRaw bool, err error) {
	s = trimReply(s)
	if raw != nil && raw(s) {
		if len(s) > maxInput {
			return nil, false, fmt.Errorf("message longer than %d octets", maxInput)
		}
		return []byte(s), true, nil
	}
	b, err := decodeBase64(s)
	return b, false, err
}

// givenAs describes how serverMessage read a message.
func givenAs(asRaw bool) string {
	if asRaw {
		return "raw text"
	}
	return "base64"
}

// truncate shortens a string for an error message.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
