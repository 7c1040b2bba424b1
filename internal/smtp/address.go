package smtp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ErrBadAddress is the cause of every address syntax error; the wrapped text says what is wrong.
var ErrBadAddress = errors.New("smtp: bad address")

// Length limits of RFC 5321 §4.5.3.1.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxPath      = 256
)

// Address is a mailbox: local part and domain. The domain is lower-cased when it is ASCII (domains
// are case-insensitive); the local part keeps the case the client sent, as RFC 5321 §2.4 asks.
type Address struct {
	Local  string // unquoted: `"john doe"` is stored as `john doe`
	Domain string // a domain name, or an address literal with its brackets ("[127.0.0.1]")
}

// String renders the address in SMTP form, quoting the local part when it needs it.
func (a Address) String() string {
	if a.Local == "" && a.Domain == "" {
		return ""
	}
	local := a.Local
	if !isDotString(local) {
		local = quoteLocal(local)
	}
	if a.Domain == "" {
		return local
	}
	return local + "@" + a.Domain
}

// IsASCII reports whether the address needs no SMTPUTF8.
func (a Address) IsASCII() bool { return IsASCII(a.Local) && IsASCII(a.Domain) }

// IsLiteral reports whether the domain is an address literal.
func (a Address) IsLiteral() bool { return strings.HasPrefix(a.Domain, "[") }

func badAddr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAddress, fmt.Sprintf(format, args...))
}

// ParseAddress parses a Mailbox (RFC 5321 §4.1.2): a dot-string or quoted-string local part, "@",
// and a domain or address literal. UTF-8 is accepted in both parts (RFC 6531); whether it is
// allowed in a transaction is the caller's decision (Address.IsASCII).
func ParseAddress(s string) (Address, error) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, badAddr("no @ in %q", s)
	}
	local, domain := s[:at], s[at+1:]
	l, err := parseLocal(local)
	if err != nil {
		return Address{}, err
	}
	d, err := ParseDomain(domain)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: l, Domain: d}, nil
}

// parseLocal checks a local part and returns it unquoted.
func parseLocal(s string) (string, error) {
	if s == "" {
		return "", badAddr("empty local part")
	}
	if len(s) > MaxLocalPart+2 {
		return "", badAddr("local part longer than %d octets", MaxLocalPart)
	}
	if s[0] != '"' {
		if !isDotString(s) {
			return "", badAddr("invalid local part %q", s)
		}
		if len(s) > MaxLocalPart {
			return "", badAddr("local part longer than %d octets", MaxLocalPart)
		}
		return s, nil
	}
	// Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE.
	if len(s) < 2 || s[len(s)-1] != '"' {
		return "", badAddr("unterminated quoted local part")
	}
	inner := s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\':
			i++
			if i == len(inner) || inner[i] < 32 || inner[i] > 126 {
				return "", badAddr("bad quoted-pair in local part")
			}
			b.WriteByte(inner[i])
		case c == '"':
			return "", badAddr("unescaped quote in local part")
		case c >= 32 && c <= 126:
			b.WriteByte(c)
		case c >= 0x80:
			r, size := utf8.DecodeRuneInString(inner[i:])
			if r == utf8.RuneError {
				return "", badAddr("invalid UTF-8 in local part")
			}
			b.WriteString(inner[i : i+size])
			i += size - 1
		default:
			return "", badAddr("control character in local part")
		}
	}
	if b.Len() == 0 || b.Len() > MaxLocalPart {
		return "", badAddr("quoted local part empty or longer than %d octets", MaxLocalPart)
	}
	return b.String(), nil
}

// isAtext is RFC 5322 atext for ASCII octets.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isDotString reports whether s is Atom *("." Atom), with UTF-8 allowed in atoms (RFC 6531).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c != '.' && !isAtext(c) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r < 0xa0 { // no UTF-8 C1 controls
			return false
		}
		i += size
	}
	return true
}

func quoteLocal(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// ParseDomain checks a domain name or address literal and returns it, lower-cased if ASCII.
func ParseDomain(s string) (string, error) {
	if s == "" {
		return "", badAddr("empty domain")
	}
	if len(s) > MaxDomain {
		return "", badAddr("domain longer than %d octets", MaxDomain)
	}
	if s[0] == '[' {
		return parseLiteral(s)
	}
	if strings.HasSuffix(s, ".") { // a trailing root dot is not allowed in SMTP
		return "", badAddr("domain %q ends with a dot", s)
	}
	for _, label := range strings.Split(s, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	if IsASCII(s) {
		s = strings.ToLower(s)
	}
	return s, nil
}

// checkLabel checks one sub-domain: Let-dig [Ldh-str], with U-labels allowed.
func checkLabel(l string) error {
	if l == "" {
		return badAddr("empty domain label")
	}
	if len(l) > 63 {
		return badAddr("domain label longer than 63 octets")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return badAddr("domain label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); {
		c := l[i]
		if c < 0x80 {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return badAddr("invalid character %q in domain", c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(l[i:])
		if r == utf8.RuneError || r < 0xa0 {
			return badAddr("invalid UTF-8 in domain")
		}
		i += size
	}
	return nil
}

// parseLiteral checks an address literal: [IPv4] or [IPv6:addr] (RFC 5321 §4.1.3).
func parseLiteral(s string) (string, error) {
	if len(s) < 3 || s[len(s)-1] != ']' {
		return "", badAddr("unterminated address literal")
	}
	inner := s[1 : len(s)-1]
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		ip, err := netip.ParseAddr(inner[5:])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", badAddr("bad IPv6 address literal")
		}
		return "[IPv6:" + ip.String() + "]", nil
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is4() {
		return "", badAddr("bad address literal %q", s)
	}
	return "[" + ip.String() + "]", nil
}

// IsASCII reports whether s has no octet above 127.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// IsAtom reports whether s is an RFC 5322 atom of ASCII atext (e.g. an ORCPT address type).
func IsAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAtext(s[i]) {
			return false
		}
	}
	return true
}
