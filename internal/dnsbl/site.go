// Package dnsbl asks DNS about a connecting client: its score on DNS-based lists (RFC 5782),
// block lists (DNSBL) and allow lists (DNSWL) alike, each with a weight and an optional filter on
// the answer, summed as Postfix's postscreen sums postscreen_dnsbl_sites; and its forward-confirmed
// reverse DNS name (PTR, then the A or AAAA records of each name). Every query goes through the
// Resolver it is handed (tern's caching resolver: answers are kept for their TTL). It decides
// nothing: policy compares the score with its thresholds and says what a missing name does.
package dnsbl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Site is one list as an admin writes it, in postscreen_dnsbl_sites' syntax:
//
//	zone[=filter][*weight]
//
// zen.example.test*3 adds 3 to the score of a client listed with any answer;
// list.dnswl.test=127.0.[0..255].[1..3]*-2 takes 2 off for an answer that matches the filter.
// A filter has four dot-separated octets, each a number, or a bracketed list of numbers and
// ranges separated by ";" ([2..11], [2;4;10..11]). The weight is 1 when left out; a negative
// weight makes the site an allow list.
type Site struct {
	Zone   string    // the list's domain, lower case, without the final dot
	filter [4][]span // nil: any answer
	Weight int       // added to the score of a listed client
	text   string    // as written, for logs
}

// span is an inclusive range of octet values.
type span struct{ lo, hi uint8 }

// String is the site as it was written.
func (s Site) String() string { return s.text }

// ParseSite parses one site (see Site).
func ParseSite(text string) (Site, error) {
	s := Site{Weight: 1, text: text}
	rest := strings.TrimSpace(text)
	if i := strings.LastIndexByte(rest, '*'); i >= 0 {
		w, err := strconv.Atoi(rest[i+1:])
		if err != nil || w < -1000 || w > 1000 {
			return Site{}, fmt.Errorf("dnsbl site %q: bad weight %q (want an integer such as 3 or -2)", text, rest[i+1:])
		}
		s.Weight, rest = w, rest[:i]
	}
	zone, filter, hasFilter := strings.Cut(rest, "=")
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	if err := checkZone(zone); err != nil {
		return Site{}, fmt.Errorf("dnsbl site %q: %w", text, err)
	}
	s.Zone = zone
	if hasFilter {
		f, err := parseFilter(filter)
		if err != nil {
			return Site{}, fmt.Errorf("dnsbl site %q: filter %q: %w", text, filter, err)
		}
		s.filter = f
	}
	return s, nil
}

// checkZone accepts a DNS name of letters, digits, hyphens and underscores.
func checkZone(z string) error {
	if z == "" || len(z) > 200 {
		return errors.New("want a zone such as zen.example.test")
	}
	for _, label := range strings.Split(z, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or over-long label in the zone")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q in the zone", c)
			}
		}
	}
	return nil
}

// parseFilter parses d.d.d.d where each d is a number or a bracketed list of numbers and
// ranges ("[1;3..5]").
func parseFilter(f string) ([4][]span, error) {
	var out [4][]span
	parts := strings.Split(f, ".")
	// A range's ".." splits too: glue the pieces of a bracket back together.
	var octets []string
	for i := 0; i < len(parts); i++ {
		p := parts[i]
		for strings.Count(p, "[") > strings.Count(p, "]") && i+1 < len(parts) {
			i++
			p += "." + parts[i]
		}
		octets = append(octets, p)
	}
	if len(octets) != 4 {
		return out, errors.New("want four octets, as 127.0.0.2 or 127.0.0.[2..11]")
	}
	for i, o := range octets {
		spans, err := parseOctet(o)
		if err != nil {
			return out, err
		}
		out[i] = spans
	}
	return out, nil
}

func parseOctet(o string) ([]span, error) {
	if !strings.HasPrefix(o, "[") {
		n, err := parseByte(o)
		return []span{{n, n}}, err
	}
	if !strings.HasSuffix(o, "]") || len(o) < 3 {
		return nil, fmt.Errorf("unclosed bracket in %q", o)
	}
	var spans []span
	for _, item := range strings.Split(o[1:len(o)-1], ";") {
		lo, hi, isRange := strings.Cut(item, "..")
		a, err := parseByte(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseByte(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q runs backwards", item)
			}
		}
		spans = append(spans, span{a, b})
	}
	return spans, nil
}

func parseByte(s string) (uint8, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a number from 0 to 255", s)
	}
	return uint8(n), nil
}

// Matches reports whether an answer of the list counts as a listing for this site.
func (s Site) Matches(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	if s.filter[0] == nil {
		return true
	}
	b := a.As4()
	for i, spans := range s.filter {
		ok := false
		for _, sp := range spans {
			if b[i] >= sp.lo && b[i] <= sp.hi {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// QueryName is the name to look ip up under zone (RFC 5782 §2.1, §2.4): the octets of an IPv4
// address reversed, the 32 nibbles of an IPv6 address reversed, then the zone; fully qualified.
func QueryName(ip netip.Addr, zone string) string {
	return reversed(ip) + zone + "."
}

// reversed is ip's octets (IPv4) or nibbles (IPv6) in reverse order, each followed by a dot.
func reversed(ip netip.Addr) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
		return b.String()
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	return b.String()
}

// ReverseName is the PTR name of ip (in-addr.arpa or ip6.arpa).
func ReverseName(ip netip.Addr) string {
	if ip.Unmap().Is4() {
		return QueryName(ip, "in-addr.arpa")
	}
	return QueryName(ip, "ip6.arpa")
}
