// Package mtasts reads MTA-STS (RFC 8461): the _mta-sts TXT record, the policy file and its
// mx patterns, and fetches the policy over HTTPS as §3.3 asks (a verified certificate for
// mta-sts.DOMAIN, no redirects, text/plain, at most 64 KiB). Remote delivery (which caches
// and applies policies) and tern dns records --check (which compares the served policy with
// tern's) both use it. It keeps no state and decides nothing: what a policy means for a
// delivery is the caller's business. The only I/O is through the *http.Client it is given.
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Policy modes (RFC 8461 §5).
const (
	ModeEnforce = "enforce"
	ModeTesting = "testing"
	ModeNone    = "none"
)

// Limits and names of RFC 8461 §3.
const (
	MaxPolicySize = 64 << 10 // "SHOULD ... 64 KB" (§3.3)
	MaxMaxAge     = 31557600 // one year, in seconds (§3.2)
	Version       = "STSv1"
	// RecordPrefix is the TXT record's name in front of the domain (§3.1).
	RecordPrefix = "_mta-sts."
	// HostPrefix is the policy host's name in front of the domain (§3.3).
	HostPrefix = "mta-sts."
	// Path is where the policy host serves the policy (§3.3).
	Path       = "/.well-known/mta-sts.txt"
	mediaType  = "text/plain"
	txtPrefix  = "v=" + Version
	maxIDLen   = 32
	maxAgeLen  = 10 // digits (§3.2: 1*10DIGIT)
	keyVersion = "version"
	keyMode    = "mode"
	keyMaxAge  = "max_age"
	keyMX      = "mx"
)

// ErrPolicy is the cause of every syntax error of a policy or a TXT record, and of a policy
// served as something else than text/plain: the policy is invalid (RFC 8460's
// sts-policy-invalid), as opposed to unreachable.
var ErrPolicy = errors.New("mtasts: bad MTA-STS policy")

// Policy is a parsed policy file.
type Policy struct {
	Version string
	Mode    string
	MX      []string // patterns: "mx.example.com" or "*.example.com", lower-case, in order
	MaxAge  time.Duration
	// Lines are the file's non-empty lines as served (without line ends): TLS-RPT's
	// policy-string (RFC 8460 §4.4), and what tern dns records --check compares.
	Lines []string
}

// URL is where domain's policy is served.
func URL(domain string) string { return "https://" + HostPrefix + domain + Path }

// Parse parses a policy file (RFC 8461 §3.2): "key: value" lines ending in LF or CRLF.
// version, mode and max_age are required, and so is at least one mx unless the mode is none.
// Unknown keys are ignored (extensions); for a repeated single-valued key the first counts.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w: larger than %d octets", ErrPolicy, MaxPolicySize)
	}
	p := &Policy{}
	var maxAge string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		p.Lines = append(p.Lines, line)
		key, val, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.TrimSpace(key) != key {
			return nil, fmt.Errorf("%w: line %q is not key: value", ErrPolicy, line)
		}
		val = strings.Trim(val, " \t")
		switch key {
		case keyVersion:
			if p.Version == "" {
				p.Version = val
			}
		case keyMode:
			if p.Mode == "" {
				p.Mode = val
			}
		case keyMaxAge:
			if maxAge == "" {
				maxAge = val
			}
		case keyMX:
			pat, err := parseMXPattern(val)
			if err != nil {
				return nil, err
			}
			p.MX = append(p.MX, pat)
		}
	}
	if p.Version != Version {
		return nil, fmt.Errorf("%w: version %q, want %s", ErrPolicy, p.Version, Version)
	}
	switch p.Mode {
	case ModeEnforce, ModeTesting:
		if len(p.MX) == 0 {
			return nil, fmt.Errorf("%w: mode %s without mx", ErrPolicy, p.Mode)
		}
	case ModeNone:
	default:
		return nil, fmt.Errorf("%w: mode %q", ErrPolicy, p.Mode)
	}
	if maxAge == "" || len(maxAge) > maxAgeLen || strings.Trim(maxAge, "0123456789") != "" {
		return nil, fmt.Errorf("%w: max_age %q", ErrPolicy, maxAge)
	}
	n, err := strconv.ParseInt(maxAge, 10, 64)
	if err != nil || n > MaxMaxAge {
		return nil, fmt.Errorf("%w: max_age %q", ErrPolicy, maxAge)
	}
	p.MaxAge = time.Duration(n) * time.Second
	return p, nil
}

// parseMXPattern checks an mx value: a domain name, or "*." and one (RFC 8461 §3.2, §4.1).
func parseMXPattern(s string) (string, error) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	name := strings.TrimPrefix(s, "*.")
	if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.ContainsAny(name, "*: \t") {
		return "", fmt.Errorf("%w: mx %q", ErrPolicy, s)
	}
	return s, nil
}

// Matches reports whether host is one of the policy's MX hosts: a pattern matches itself, and
// "*.example.com" any name with exactly one more label in front (RFC 8461 §4.1).
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// ParseRecord parses a _mta-sts TXT record (RFC 8461 §3.1): "v=STSv1; id=...;" and returns
// the id. ok is false for a TXT record that is not an MTA-STS record at all.
func ParseRecord(txt string) (id string, ok bool, err error) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != txtPrefix {
		return "", false, nil
	}
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue
		}
		k, v, found := strings.Cut(f, "=")
		if !found {
			return "", true, fmt.Errorf("%w: record field %q", ErrPolicy, f)
		}
		if k == "id" && id == "" {
			id = v
		}
	}
	if id == "" || len(id) > maxIDLen || !isAlnum(id) {
		return "", true, fmt.Errorf("%w: record id %q", ErrPolicy, id)
	}
	return id, true, nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
