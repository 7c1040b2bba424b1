package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// checkSyntax checks a whole SPF record against the ABNF of RFC 7208 §12 before it is
// evaluated: §4.6 says a syntax error anywhere in the record is a permerror "without further
// interpretation", while the library evaluates term by term and so passes a record whose
// matching term comes before the error. It also refuses a second redirect= or exp= (§6).
func checkSyntax(record string) error {
	terms := strings.Split(record, " ")
	if !strings.EqualFold(terms[0], "v=spf1") {
		return errors.New("not an SPF record")
	}
	seen := map[string]bool{}
	for _, t := range terms[1:] {
		if t == "" {
			continue // 1*SP between terms
		}
		if err := checkTerm(t, seen); err != nil {
			return fmt.Errorf("SPF syntax error in %q: %w", t, err)
		}
	}
	return nil
}

func checkTerm(t string, seen map[string]bool) error {
	// A modifier's name comes before any ':' or '/' (§4.6.1).
	if eq := strings.IndexByte(t, '='); eq > 0 && !strings.ContainsAny(t[:eq], ":/") {
		name := strings.ToLower(t[:eq])
		if !isName(name) {
			return errors.New("bad modifier name")
		}
		if name == "redirect" || name == "exp" {
			if seen[name] {
				return errors.New("a second " + name)
			}
			seen[name] = true
			return checkDomainSpec(t[eq+1:])
		}
		_, err := checkMacroString(t[eq+1:])
		return err
	}
	if strings.ContainsRune("+-~?", rune(t[0])) {
		t = t[1:]
	}
	name, arg, hasArg := strings.Cut(t, ":")
	name = strings.ToLower(name)
	switch {
	case name == "all" && !hasArg:
		return nil
	case name == "include" || name == "exists":
		if !hasArg {
			return errors.New("a domain is required")
		}
		return checkDomainSpec(arg)
	case name == "ptr":
		if hasArg {
			return checkDomainSpec(arg)
		}
		return nil
	case name == "ip4" || name == "ip6":
		if !hasArg {
			return errors.New("an address is required")
		}
		return checkNetwork(arg, name == "ip4")
	}
	// a and mx: the name, then an optional :domain-spec, then an optional dual-cidr-length.
	// The CIDR lengths can be told from the domain because a domain-spec has no '/'.
	base, cidr, _ := strings.Cut(t, "/")
	name, arg, hasArg = strings.Cut(base, ":")
	if n := strings.ToLower(name); n != "a" && n != "mx" {
		return errors.New("unknown mechanism")
	}
	if hasArg {
		if err := checkDomainSpec(arg); err != nil {
			return err
		}
	}
	if strings.Contains(t, "/") {
		return checkDualCIDR("/" + cidr)
	}
	return nil
}

// checkNetwork checks ip4-network [ip4-cidr-length] or ip6-network [ip6-cidr-length].
func checkNetwork(s string, v4 bool) error {
	addr, length, hasLen := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is4() != v4 || a.Zone() != "" {
		return errors.New("bad address")
	}
	if hasLen {
		max := 128
		if v4 {
			max = 32
		}
		if !cidrLen(length, max) {
			return errors.New("bad prefix length")
		}
	}
	return nil
}

// checkDualCIDR checks dual-cidr-length: [ "/" ip4-cidr-length ] [ "//" ip6-cidr-length ].
func checkDualCIDR(s string) error {
	v4, v6, dual := strings.Cut(s, "//")
	if v4 != "" && (!strings.HasPrefix(v4, "/") || !cidrLen(v4[1:], 32)) {
		return errors.New("bad IPv4 prefix length")
	}
	if dual && !cidrLen(v6, 128) {
		return errors.New("bad IPv6 prefix length")
	}
	return nil
}

// cidrLen: "0" or a number without leading zero, up to max (§5.6).
func cidrLen(s string, max int) bool {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= max && s[0] != '+' && s[0] != '-'
}

// isName: ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && (i == 0 || !(isDigit(c) || c == '-' || c == '_' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkDomainSpec: macro-string domain-end, where domain-end is "." toplabel ["."] or a
// macro-expand (§7.1).
func checkDomainSpec(s string) error {
	endsInMacro, err := checkMacroString(s)
	if err != nil || endsInMacro {
		return err
	}
	d := strings.TrimSuffix(s, ".")
	dot := strings.LastIndexByte(d, '.')
	if dot < 0 {
		return errors.New("a domain needs a dot and a top label")
	}
	if !isTopLabel(d[dot+1:]) {
		return errors.New("bad top label")
	}
	return nil
}

// isTopLabel: ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
func isTopLabel(l string) bool {
	if l == "" {
		return false
	}
	alpha := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case isAlpha(c):
			alpha = true
		case isDigit(c):
		case c == '-' && i > 0 && i < len(l)-1:
			alpha = true // the second form: a hyphen inside makes it not all-numeric
		default:
			return false
		}
	}
	return alpha
}

// checkMacroString: *( macro-expand / macro-literal ), macro-literal being %x21-24 / %x26-7E;
// endsInMacro says whether the last of them is a macro-expand.
func checkMacroString(s string) (endsInMacro bool, err error) {
	for i := 0; i < len(s); i++ {
		endsInMacro = false
		c := s[i]
		if c != '%' {
			if c < 0x21 || c > 0x7e {
				return false, errors.New("a character not allowed in a macro string")
			}
			continue
		}
		endsInMacro = true
		if i+1 >= len(s) {
			return false, errors.New("a lone %")
		}
		i++
		switch s[i] {
		case '%', '_', '-':
			continue
		case '{':
		default:
			return false, errors.New("bad macro")
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 || !isMacro(s[i+1:i+end]) {
			return false, errors.New("bad macro")
		}
		i += end
	}
	return endsInMacro, nil
}

// isMacro: macro-letter transformers *delimiter, transformers being *DIGIT ["r"].
func isMacro(m string) bool {
	if m == "" || !strings.ContainsRune("slodiphcrtvSLODIPHCRTV", rune(m[0])) {
		return false
	}
	i := 1
	for i < len(m) && isDigit(m[i]) {
		i++
	}
	if i < len(m) && (m[i] == 'r' || m[i] == 'R') {
		i++
	}
	for ; i < len(m); i++ {
		if !strings.ContainsRune(".-+,/_=", rune(m[i])) {
			return false
		}
	}
	return true
}
