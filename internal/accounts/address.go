package accounts

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length limits, in octets of the normalized (lower-cased) UTF-8 form.
const (
	// maxLocalLen is the local-part limit of RFC 5321 §4.5.3.1.1.
	maxLocalLen = 64
	// maxDomainLen is the domain limit of RFC 5321 §4.5.3.1.2 minus the root dot (RFC 1035
	// §2.3.4 counts 255 octets on the wire, which leaves 253 characters of text).
	maxDomainLen = 253
	// maxLabelLen is the DNS label limit of RFC 1035 §2.3.4. For a U-label the real limit is
	// on its A-label (punycode) form; counting UTF-8 octets is close and never looser for
	// the path-safety purpose we need it for.
	maxLabelLen = 63
	// maxInputLen bounds the work done on hostile input before any other check. Lower-casing
	// can grow a rune from 2 to 3 octets, so it is a little more than 3/2 of the longest
	// valid address.
	maxInputLen = 2 * (maxLocalLen + 1 + maxDomainLen)
)

// NormalizeAddress returns addr in the canonical form used as the account key, or an error
// wrapping ErrBadAddress.
//
// The canonical form is the whole address lower-cased. RFC 5321 §2.4 lets a server treat local
// parts as case-sensitive, but almost no one means Alice and alice to be two mailboxes, and
// having one spelling per account keeps mailbox directories unique.
//
// The local part and domain become directory names (<data>/mail/<domain>/<localpart>/Maildir),
// so this is a security boundary, not just syntax: the result never contains '/', '\\', NUL,
// control characters or whitespace, and neither part is empty, ".", "..", or starts with '.'.
// Accepted are:
//   - local part: 1..64 octets of dot-atom text (RFC 5322 §3.2.3) without '/', plus non-ASCII
//     letters, digits and marks (RFC 6531 SMTPUTF8). Quoted local parts are refused.
//   - domain: 1..253 octets of dot-separated labels of 1..63 octets, each made of letters,
//     digits and inner hyphens (RFC 1123 §2.1), where letters and digits may be non-ASCII
//     (IDNA U-labels, RFC 6531). Address literals such as [192.0.2.1] are refused.
//
// TODO(accounts): apply Unicode NFC before comparing, so that a composed and a decomposed
// "ø" name the same account; that needs golang.org/x/text, which the module does not use yet.
func NormalizeAddress(addr string) (string, error) {
	if len(addr) > maxInputLen {
		return "", badAddress(addr, "too long")
	}
	// Checked before lower-casing because strings.ToLower silently turns invalid UTF-8 into
	// U+FFFD, which would make two different inputs the same account.
	if !utf8.ValidString(addr) {
		return "", badAddress(addr, "not valid UTF-8")
	}
	norm := strings.ToLower(addr)
	at := strings.LastIndexByte(norm, '@')
	if at < 0 {
		return "", badAddress(addr, "missing '@'")
	}
	if err := checkLocalPart(norm[:at]); err != nil {
		return "", badAddress(addr, err.Error())
	}
	if err := checkDomain(norm[at+1:]); err != nil {
		return "", badAddress(addr, err.Error())
	}
	return norm, nil
}

func badAddress(addr, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrBadAddress, addr, reason)
}

// checkLocalPart validates a lower-cased local part. The reasons it returns are for operators
// and logs; they are not shown to SMTP peers.
func checkLocalPart(local string) error {
	switch {
	case local == "":
		return fmt.Errorf("empty local part")
	case len(local) > maxLocalLen:
		return fmt.Errorf("local part longer than %d octets", maxLocalLen)
	case local[0] == '.':
		// Also refuses "." and "..", and hidden directories.
		return fmt.Errorf("local part starts with '.'")
	case local[len(local)-1] == '.':
		return fmt.Errorf("local part ends with '.'")
	case strings.Contains(local, ".."):
		return fmt.Errorf("local part contains \"..\"")
	}
	for _, r := range local {
		if !localRune(r) {
			return fmt.Errorf("local part contains %q", r)
		}
	}
	return nil
}

// localRune reports whether r may appear in a lower-cased local part. It is an allow-list: atext of RFC 5322
// §3.2.3 without '/' (a path separator), the dot (placement checked by the caller), and
// non-ASCII letters, digits and combining marks. Everything else (controls, whitespace, '@',
// '\\', quotes, non-ASCII symbols and format characters) is refused.
func localRune(r rune) bool {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return true
		}
		return strings.ContainsRune("!#$%&'*+-=?^_`{|}~.", r)
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// checkDomain validates a lower-cased domain.
func checkDomain(domain string) error {
	switch {
	case domain == "":
		return fmt.Errorf("empty domain")
	case len(domain) > maxDomainLen:
		return fmt.Errorf("domain longer than %d octets", maxDomainLen)
	}
	// An empty label catches a leading or trailing '.', "..", and the root "." alike.
	for label := range strings.SplitSeq(domain, ".") {
		switch {
		case label == "":
			return fmt.Errorf("empty domain label")
		case len(label) > maxLabelLen:
			return fmt.Errorf("domain label longer than %d octets", maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("domain label %q starts or ends with '-'", label)
		}
		for _, r := range label {
			if !labelRune(r) {
				return fmt.Errorf("domain contains %q", r)
			}
		}
	}
	return nil
}

// labelRune reports whether r may appear in a lower-cased domain label: LDH (RFC 1123 §2.1), or a
// non-ASCII letter, digit or combining mark of a U-label.
func labelRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}
