package dmarc

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// The From field errors that make the result permerror (RFC 7489 §6.6.1).
var (
	ErrNoFrom        = errors.New("dmarc: no From field")
	ErrSeveralFrom   = errors.New("dmarc: several From fields")
	ErrNoAuthor      = errors.New("dmarc: no address in the From field")
	ErrSeveralAuthor = errors.New("dmarc: From addresses in different domains")
)

// FromDomain returns the RFC5322.From domain (RFC 7489 §3.1, §6.6.1) of a message whose From
// fields have the values fields (after the colon, continuation lines included or unfolded). The
// domain is lower case, in A-labels. Exactly one From field is allowed, holding at least one
// address; several addresses must share one domain. RFC 7489 §6.6.1 lets a receiver reject or
// ignore the others; tern takes them as permerror (checking each domain and applying the
// strictest result is the alternative the RFC names, which nobody sending honest mail needs).
//
// The parser reads mailbox-list and address-list syntax (RFC 5322 §3.4), obsolete forms
// included: display names (RFC 2047 encoded words are atoms to it), comments, quoted
// strings, groups and source routes are skipped; only the domain after the last '@' of each
// addr-spec matters.
func FromDomain(fields []string) (string, error) {
	switch len(fields) {
	case 0:
		return "", ErrNoFrom
	case 1:
	default:
		return "", ErrSeveralFrom
	}
	domains, err := addressDomains(fields[0])
	if err != nil {
		return "", err
	}
	if len(domains) == 0 {
		return "", ErrNoAuthor
	}
	d := domains[0]
	for _, o := range domains[1:] {
		if !strings.EqualFold(o, d) {
			return "", ErrSeveralAuthor
		}
	}
	return Domain(d)
}

// Domain checks and normalises a domain name as DNS knows it: lower case, A-labels for an
// internationalised one (RFC 6532), no final dot; no domain literal.
func Domain(d string) (string, error) {
	a := strings.TrimSuffix(d, ".")
	if !isASCII(a) {
		var err error
		if a, err = idna.Lookup.ToASCII(a); err != nil {
			return "", fmt.Errorf("dmarc: domain %q: %w", d, err)
		}
	}
	if !isDomain(a) {
		return "", fmt.Errorf("dmarc: %q is not a domain name", d)
	}
	return strings.ToLower(a), nil
}

// token is one lexical unit of a header field: a special character, or a word (an atom, a
// quoted string, a domain literal). Comments and folding white space are dropped.
type token struct {
	special byte   // one of <>@,:;. or 0 for a word
	text    string // the word; a quoted string keeps its quotes, a domain literal its brackets
}

// lex splits s into tokens (RFC 5322 §3.2). Unbalanced quotes, comments and brackets are errors.
func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			j, depth := i, 0
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if j >= len(s) {
				return nil, errors.New("dmarc: unterminated comment in the From field")
			}
			i = j + 1
		case c == '"' || c == '[':
			end := byte('"')
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for ; j < len(s) && s[j] != end; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, errors.New("dmarc: unterminated quoted string or domain literal in the From field")
			}
			toks = append(toks, token{text: s[i : j+1]})
			i = j + 1
		case c == ')' || c == ']':
			return nil, fmt.Errorf("dmarc: unbalanced %q in the From field", c)
		case strings.IndexByte("<>@,:;.", c) >= 0:
			toks = append(toks, token{special: c})
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte("<>@,:;.()\"[] \t\r\n", s[j]) < 0 {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// addressDomains returns the domain of each address of an address-list.
func addressDomains(s string) ([]string, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	var domains []string
	var mailbox []token // the tokens of the address being read
	angle := false      // inside <...>
	end := func() error {
		if len(mailbox) == 0 {
			return nil // obs-mbox-list allows empty elements: "a@b.example, , c@d.example"
		}
		d, err := addrSpecDomain(mailbox)
		mailbox = mailbox[:0]
		if err != nil {
			return err
		}
		domains = append(domains, d)
		return nil
	}
	for _, t := range toks {
		switch {
		case t.special == '<' && !angle:
			angle = true
			mailbox = mailbox[:0] // what came before was the display name
		case t.special == '>' && angle:
			angle = false
			if err := end(); err != nil {
				return nil, err
			}
		case angle && t.special == ':':
			mailbox = mailbox[:0] // obs-route "@a.example,@b.example:" before the addr-spec
		case angle && t.special == ',':
			mailbox = mailbox[:0] // within an obs-route
		case angle:
			mailbox = append(mailbox, t)
		case t.special == ':':
			mailbox = mailbox[:0] // a group's display name
		case t.special == ',' || t.special == ';':
			if err := end(); err != nil {
				return nil, err
			}
		case t.special == '<' || t.special == '>':
			return nil, errors.New("dmarc: misplaced angle bracket in the From field")
		default:
			mailbox = append(mailbox, t)
		}
	}
	if angle {
		return nil, errors.New("dmarc: unterminated angle address in the From field")
	}
	if err := end(); err != nil {
		return nil, err
	}
	return domains, nil
}

// addrSpecDomain returns the domain of the addr-spec in toks: what follows its last '@'.
func addrSpecDomain(toks []token) (string, error) {
	at := -1
	for i, t := range toks {
		if t.special == '@' {
			at = i
		}
	}
	if at <= 0 {
		return "", ErrNoAuthor
	}
	var b strings.Builder
	for _, t := range toks[at+1:] {
		switch t.special {
		case '.':
			b.WriteByte('.')
		case 0:
			b.WriteString(t.text)
		default:
			return "", fmt.Errorf("dmarc: unexpected %q in the From domain", t.special)
		}
	}
	if b.Len() == 0 {
		return "", ErrNoAuthor
	}
	return b.String(), nil
}

// isDomain reports whether s is a DNS domain name of letters, digits, hyphens and underscores
// (no domain literal, no empty label), at most 253 octets.
func isDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
