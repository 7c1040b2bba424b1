package dkim

import (
	"fmt"
	"strings"
)

// NormalizeDomain checks a signing domain as an administrator types it and returns it in the
// form tern stores: lower case, without a final dot. Only ASCII host names are taken
// (letters, digits, hyphens, dot-separated labels of at most 63 octets, 253 in all); an
// internationalized domain is given as its A-labels (xn--...), the form DNS and d= use.
func NormalizeDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if err := checkName(d, 253); err != nil {
		return "", fmt.Errorf("dkim: bad domain %q: %v", s, err)
	}
	if !strings.Contains(d, ".") {
		return "", fmt.Errorf("dkim: bad domain %q: a mail domain has at least two labels", s)
	}
	return d, nil
}

// CheckSelector checks a selector: a sub-domain of one or more labels (RFC 6376 §3.1), at most
// 63 octets in all here so that selector._domainkey.domain stays a valid name.
func CheckSelector(s string) error {
	if err := checkName(s, 63); err != nil {
		return fmt.Errorf("dkim: bad selector %q: %v", s, err)
	}
	return nil
}

// checkName checks dot-separated LDH labels (RFC 1035 §2.3.1, with a leading digit allowed as
// RFC 1123 §2.1 does), at most max octets in all.
func checkName(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d octets", max)
	}
	for _, label := range strings.Split(s, ".") {
		switch {
		case label == "":
			return fmt.Errorf("empty label")
		case len(label) > 63:
			return fmt.Errorf("label longer than 63 octets")
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label starts or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a letter, digit or hyphen (give an internationalized name as xn-- A-labels)", c)
			}
		}
	}
	return nil
}
