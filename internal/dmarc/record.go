package dmarc

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// ErrNotDMARC is the parse error of a TXT record that does not start with v=DMARC1: it is not a
// DMARC record, and discovery discards it (RFC 7489 §6.6.3 step 3).
var ErrNotDMARC = errors.New("dmarc: not a DMARC record")

// ErrNoPolicy is the parse error of a DMARC record without a usable p= (or with a bad sp=) and
// no valid rua= to fall back on p=none with: no DMARC processing applies (RFC 7489 §6.6.3).
var ErrNoPolicy = errors.New("dmarc: record has no valid p= and no valid rua=")

// ParseRecord parses a DMARC record (RFC 7489 §6.3, §6.4) into what it publishes; Domain is
// left for the caller. It is lenient where the RFC says so and tern's library of choice
// (emersion/go-msgauth/dmarc) is not: a bad value of any tag but v, p and sp falls back to the
// tag's default (§6.3: "syntax errors in the remainder of the record SHOULD be discarded in
// favor of default values"), unknown tags are ignored, and a missing or bad p= (or a bad sp=)
// reads as p=none when rua= holds a valid URI (§6.6.3 step 6). v=DMARC1 must come first.
func ParseRecord(txt string) (Published, error) {
	tags := strings.Split(txt, ";")
	name, value, ok := tag(tags[0])
	if !ok || name != "v" || value != "DMARC1" {
		return Published{}, ErrNotDMARC
	}
	pub := Published{ADKIM: "r", ASPF: "r", Pct: 100, FO: "0"}
	seen := map[string]bool{}
	var p, sp string
	for _, t := range tags[1:] {
		name, value, ok := tag(t)
		if !ok || seen[name] {
			continue // a later duplicate does not change what the first one said
		}
		seen[name] = true
		switch name {
		case "p":
			p = value
		case "sp":
			sp = value
		case "adkim", "aspf":
			if v := strings.ToLower(value); v == "r" || v == "s" {
				if name == "adkim" {
					pub.ADKIM = v
				} else {
					pub.ASPF = v
				}
			}
		case "pct":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 && n <= 100 {
				pub.Pct = n
			}
		case "fo":
			if validFO(value) {
				pub.FO = value
			}
		case "rua":
			pub.RUA = uriList(value)
		}
	}
	var pOK, spOK bool
	pub.P, pOK = policy(p)
	pub.SP, spOK = policy(sp)
	switch {
	case !pOK || (sp != "" && !spOK):
		if len(pub.RUA) == 0 {
			return Published{}, ErrNoPolicy
		}
		pub.P, pub.SP = PolicyNone, PolicyNone
	case sp == "":
		pub.SP = pub.P // §6.3: without sp=, p= applies to subdomains too
	}
	return pub, nil
}

// tag splits one tag-spec "name = value" (§6.4: whitespace allowed around both); the name is
// case-insensitive like every ABNF literal.
func tag(s string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(s, "=")
	name = strings.ToLower(strings.Trim(name, " \t\r\n"))
	return name, strings.Trim(value, " \t\r\n"), ok && name != ""
}

func policy(s string) (Policy, bool) {
	switch p := Policy(strings.ToLower(s)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

// validFO checks fo= (§6.3): a colon-separated list of 0, 1, d and s.
func validFO(s string) bool {
	for o := range strings.SplitSeq(s, ":") {
		switch strings.Trim(o, " \t") {
		case "0", "1", "d", "s":
		default:
			return false
		}
	}
	return true
}

// uriList keeps the valid URIs of rua= (§6.4 dmarc-uri: a URI with a scheme, optionally followed
// by "!" and a size limit), as published.
func uriList(s string) []string {
	var uris []string
	for u := range strings.SplitSeq(s, ",") {
		u = strings.Trim(u, " \t\r\n")
		base := u
		if i := strings.LastIndexByte(u, '!'); i >= 0 && validSize(u[i+1:]) {
			base = u[:i]
		}
		if p, err := url.Parse(base); err == nil && p.Scheme != "" && (p.Opaque != "" || p.Host != "" || p.Path != "") {
			uris = append(uris, u)
		}
	}
	return uris
}

// validSize checks the size limit of a dmarc-uri: digits and an optional unit k, m, g or t.
func validSize(s string) bool {
	if n := len(s); n > 1 && strings.IndexByte("kmgtKMGT", s[n-1]) >= 0 {
		s = s[:n-1]
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
