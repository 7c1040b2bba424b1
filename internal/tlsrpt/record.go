package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Record is a domain's TLS reporting policy: the TXT record at _smtp._tls.<domain> (RFC 8460 §3).
type Record struct {
	// RUA are where reports go, in the record's order: mailto: addresses and https: URIs.
	RUA []*url.URL
}

// Errors of ParseRecord and FindRecord.
var (
	ErrNoRecord  = errors.New("tlsrpt: no TLSRPT record")
	ErrBadRecord = errors.New("tlsrpt: malformed TLSRPT record")
)

// maxRecord bounds what ParseRecord reads: a TXT record larger than this is not a policy anyone
// means (RFC 8460 records are a few hundred octets).
const maxRecord = 4096

// FindRecord picks the record from the TXT strings at _smtp._tls.<domain> (each TXT record's
// strings already joined): those not starting with "v=TLSRPTv1;" are discarded, and unless
// exactly one is left the domain does not use TLS reporting (RFC 8460 §3).
func FindRecord(txts []string) (Record, error) {
	var found []string
	for _, t := range txts {
		if isTLSRPT(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return Record{}, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	default:
		return Record{}, fmt.Errorf("%w: %d records", ErrNoRecord, len(found))
	}
}

// isTLSRPT reports whether txt begins with the version field: "v=TLSRPTv1" then ";" after
// optional white space (RFC 8460 §3: field-delim = *WSP ";" *WSP).
func isTLSRPT(txt string) bool {
	rest, ok := strings.CutPrefix(txt, "v=TLSRPTv1")
	return ok && strings.HasPrefix(strings.TrimLeft(rest, " \t"), ";")
}

// ParseRecord parses one TLSRPT record (RFC 8460 §3):
//
//	tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	tlsrpt-rua    = "rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//
// Fields other than rua are extensions and ignored; exactly one rua is required, with only
// mailto: and https: URIs (others are an error: a record a sender cannot use). Commas and
// semicolons inside a URI must be %-escaped, as the RFC says.
func ParseRecord(txt string) (Record, error) {
	if len(txt) > maxRecord {
		return Record{}, fmt.Errorf("%w: longer than %d octets", ErrBadRecord, maxRecord)
	}
	if !isTLSRPT(txt) {
		return Record{}, fmt.Errorf("%w: does not begin with v=TLSRPTv1", ErrBadRecord)
	}
	var rec Record
	seen := false
	fields := strings.Split(txt, ";")
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 { // the optional trailing delimiter
				break
			}
			return Record{}, fmt.Errorf("%w: empty field", ErrBadRecord)
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || !validFieldName(name) {
			return Record{}, fmt.Errorf("%w: field %q", ErrBadRecord, f)
		}
		if name != "rua" {
			continue // an extension (RFC 8460 §3: tlsrpt-ext)
		}
		if seen {
			return Record{}, fmt.Errorf("%w: rua given twice", ErrBadRecord)
		}
		seen = true
		for _, u := range strings.Split(value, ",") {
			parsed, err := parseRUA(strings.Trim(u, " \t"))
			if err != nil {
				return Record{}, err
			}
			rec.RUA = append(rec.RUA, parsed)
		}
	}
	if !seen {
		return Record{}, fmt.Errorf("%w: no rua", ErrBadRecord)
	}
	return rec, nil
}

// validFieldName checks tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func validFieldName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// parseRUA parses one reporting URI: mailto:local@domain or https://host/path.
func parseRUA(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: rua %q: %v", ErrBadRecord, s, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		u.Scheme = "mailto"
		at := strings.LastIndexByte(u.Opaque, '@')
		if u.Opaque == "" || at <= 0 || at == len(u.Opaque)-1 || u.RawQuery != "" {
			return nil, fmt.Errorf("%w: rua %q is not a mailto: address", ErrBadRecord, s)
		}
	case "https":
		u.Scheme = "https"
		if u.Host == "" {
			return nil, fmt.Errorf("%w: rua %q has no host", ErrBadRecord, s)
		}
	default:
		return nil, fmt.Errorf("%w: rua %q: only mailto: and https: reports exist", ErrBadRecord, s)
	}
	return u, nil
}

// MailtoAddress is the address of a mailto: URI, unescaped.
func MailtoAddress(u *url.URL) (string, error) {
	if u.Scheme != "mailto" {
		return "", fmt.Errorf("tlsrpt: %s is not a mailto: URI", u)
	}
	a, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return "", fmt.Errorf("tlsrpt: %s: %w", u, err)
	}
	return a, nil
}
