package smtp

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the command parser; the session turns them into 501 replies.
var (
	ErrSyntax   = errors.New("smtp: syntax error")
	ErrBadParam = errors.New("smtp: bad parameter")
)

// MaxCommandLine is the longest command line, CRLF included (RFC 5321 §4.5.3.1.4). Extensions
// raise it for MAIL and RCPT: see MaxMailLine and MaxRcptLine.
const MaxCommandLine = 512

// MaxMailLine allows MAIL FROM the extra octets of SIZE (RFC 1870: 26), ENVID (RFC 3461: 100) and
// AUTH (RFC 4954: 500) on top of the base limit; MaxRcptLine allows ORCPT (RFC 3461: 500).
const (
	MaxMailLine = MaxCommandLine + 26 + 100 + 500
	MaxRcptLine = MaxCommandLine + 500
)

// ParseCommand splits a command line into its verb, upper-cased, and the argument text after the
// first space with surrounding spaces removed. Verbs are case-insensitive (RFC 5321 §2.4).
func ParseCommand(line string) (verb, arg string) {
	verb, arg, _ = strings.Cut(line, " ")
	return strings.ToUpper(verb), strings.Trim(arg, " \t")
}

// Param is one ESMTP parameter of MAIL or RCPT. Key is upper-cased; Value is "" for a keyword
// without "=".
type Param struct {
	Key, Value string
	HasValue   bool
}

// PathArg is a MAIL FROM or RCPT TO argument split into its path and parameters.
type PathArg struct {
	Path   string // the text between < and >, or the bare address; "" for <>
	Params []Param
}

// ParsePathArg parses the argument of MAIL ("FROM:") or RCPT ("TO:"). Like Postfix, it tolerates
// spaces after the colon ("MAIL FROM: <a@b>", as people type it) and a bare address without
// angle brackets ("MAIL FROM:a@b"); a bare address then cannot carry parameters containing
// spaces, which none do.
func ParsePathArg(arg, keyword string) (PathArg, error) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return PathArg{}, fmt.Errorf("%w: expected %s", ErrSyntax, keyword)
	}
	rest := strings.TrimLeft(arg[len(keyword):], " ")
	var pa PathArg
	if strings.HasPrefix(rest, "<") {
		end := closingBracket(rest)
		if end < 0 {
			return PathArg{}, fmt.Errorf("%w: missing >", ErrSyntax)
		}
		pa.Path = rest[1:end]
		rest = rest[end+1:]
		if rest != "" && rest[0] != ' ' {
			return PathArg{}, fmt.Errorf("%w: junk after >", ErrSyntax)
		}
	} else {
		var after string
		pa.Path, after, _ = strings.Cut(rest, " ")
		if pa.Path == "" {
			return PathArg{}, fmt.Errorf("%w: missing address", ErrSyntax)
		}
		rest = after
	}
	params, err := ParseParams(rest)
	if err != nil {
		return PathArg{}, err
	}
	pa.Params = params
	return pa, nil
}

// closingBracket finds the '>' that closes the path opened at s[0], skipping quoted strings.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '>':
			if !quoted {
				return i
			}
		}
	}
	return -1
}

// ParseReversePath parses the path of MAIL FROM. The null path "<>" gives the zero Address.
// A source route ("@a,@b:user@c") is accepted and ignored (RFC 5321 §4.1.2, Appendix C).
func ParseReversePath(path string) (Address, error) {
	if path == "" {
		return Address{}, nil
	}
	return ParseAddress(stripSourceRoute(path))
}

// ParseForwardPath parses the path of RCPT TO. "<Postmaster>" without a domain is allowed (RFC
// 5321 §4.1.1.3) and comes back with an empty Domain, which the caller fills in.
func ParseForwardPath(path string) (Address, error) {
	if path == "" {
		return Address{}, badAddr("empty recipient")
	}
	if strings.EqualFold(path, "postmaster") {
		return Address{Local: "postmaster"}, nil
	}
	return ParseAddress(stripSourceRoute(path))
}

func stripSourceRoute(p string) string {
	if strings.HasPrefix(p, "@") {
		if i := strings.IndexByte(p, ':'); i >= 0 {
			return p[i+1:]
		}
	}
	return p
}

// ParseParams parses space-separated ESMTP parameters (RFC 5321 §4.1.2: esmtp-keyword
// ["=" esmtp-value]). A keyword may appear once.
func ParseParams(s string) ([]Param, error) {
	var params []Param
	for _, f := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		if !isKeyword(k) {
			return nil, fmt.Errorf("%w: bad keyword %q", ErrBadParam, k)
		}
		if hasValue && !isParamValue(v) {
			return nil, fmt.Errorf("%w: bad value for %s", ErrBadParam, k)
		}
		k = strings.ToUpper(k)
		for _, p := range params {
			if p.Key == k {
				return nil, fmt.Errorf("%w: %s given twice", ErrBadParam, k)
			}
		}
		params = append(params, Param{Key: k, Value: v, HasValue: hasValue})
	}
	return params, nil
}

// isKeyword is esmtp-keyword: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func isKeyword(k string) bool {
	if k == "" || k[0] == '-' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isParamValue is esmtp-value: 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531 §3.3).
func isParamValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '=' || c < 33 || c == 127 {
			return false
		}
	}
	return true
}

// DecodeXtext decodes RFC 3461 §4 xtext ("+" HEX HEX escapes).
func DecodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		for i := 0; i < len(s); i++ {
			if s[i] < 33 || s[i] > 126 || s[i] == '=' {
				return "", fmt.Errorf("%w: bad xtext", ErrBadParam)
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", fmt.Errorf("%w: bad xtext escape", ErrBadParam)
			}
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c < 33 || c > 126 || c == '=':
			return "", fmt.Errorf("%w: bad xtext", ErrBadParam)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// EncodeXtext encodes s as RFC 3461 xtext.
func EncodeXtext(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			b.WriteByte('+')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
