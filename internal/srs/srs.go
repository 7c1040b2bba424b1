// Package srs implements the Sender Rewriting Scheme (SRS) in the format of libsrs2, which
// postsrsd, Exim and most other implementations share: a forwarder rewrites the envelope sender
// of mail it forwards to an address of its own domain, so that SPF at the destination checks the
// forwarder, and a bounce to that address can be routed back to the original sender.
//
//	alice@example.com            -> SRS0=HHHH=TT=example.com=alice@forwarder.test
//	SRS0=HHHH=TT=example.com=alice@first.test
//	                             -> SRS1=HHHH=first.test==HHHH=TT=example.com=alice@forwarder.test
//
// HHHH is the start of the base64 HMAC-SHA1 of the rest (ASCII lower-cased) under the secret, so
// that no one else can make addresses that this forwarder sends mail to; TT is the day of the
// rewrite (days since the epoch, modulo 1024, in two base32 characters), so that an address
// expires (after MaxAge days). SRS1 is the "guarded" form for an address rewritten by another
// forwarder first: it keeps that forwarder's SRS0 address intact and reverses to it.
//
// The package computes and checks addresses only: it does no I/O (the secret is handed in) and
// decides nothing about which mail is rewritten.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of Reverse. Each is wrapped with the address.
var (
	// ErrNotSRS means the address is not an SRS address at all.
	ErrNotSRS = errors.New("srs: not an SRS address")
	// ErrSyntax means the address starts like one but lacks a part.
	ErrSyntax = errors.New("srs: malformed SRS address")
	// ErrBadHash means the hash does not match: the address was not made with our secret.
	ErrBadHash = errors.New("srs: hash invalid in SRS address")
	// ErrExpired means the address is older than MaxAge days.
	ErrExpired = errors.New("srs: SRS address expired")
)

// Defaults, those of libsrs2 and postsrsd.
const (
	DefaultHashLength = 4
	DefaultMaxAge     = 21 // days
)

const (
	timeChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" // base32 of RFC 4648, as libsrs2
	timeSlots  = 1 << 10                            // two base32 characters
	day        = 24 * 60 * 60
	maxAddrLen = 1024 // bounds the work on hostile input
)

// Options configure an SRS.
type Options struct {
	// Secrets: the first signs, every one verifies (for a change of secret). Required.
	Secrets [][]byte
	// Domain is the forwarder's domain, in the rewritten addresses. Required.
	Domain string
	// HashLength is the number of hash characters made and required. Default 4.
	HashLength int
	// MaxAge is how many days an address stays valid. Default 21.
	MaxAge int
	// Separator follows SRS0/SRS1: '=', '+' or '-'. Default '='.
	Separator byte
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// SRS rewrites and reverses addresses. It is safe for concurrent use.
type SRS struct{ o Options }

// New checks o and returns an SRS.
func New(o Options) (*SRS, error) {
	if len(o.Secrets) == 0 || len(o.Secrets[0]) == 0 {
		return nil, errors.New("srs: no secret")
	}
	if o.Domain == "" || strings.ContainsAny(o.Domain, "@ ") {
		return nil, fmt.Errorf("srs: bad domain %q", o.Domain)
	}
	if o.HashLength <= 0 {
		o.HashLength = DefaultHashLength
	}
	if o.HashLength > 27 { // base64 of a SHA-1 digest
		return nil, fmt.Errorf("srs: hash length %d: at most 27", o.HashLength)
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	switch o.Separator {
	case 0:
		o.Separator = '='
	case '=', '+', '-':
	default:
		return nil, fmt.Errorf("srs: separator %q: want = + or -", o.Separator)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &SRS{o: o}, nil
}

// Domain is the forwarder's domain.
func (s *SRS) Domain() string { return s.o.Domain }

// IsSRS reports whether local is the local part of an SRS address (SRS0 or SRS1, any case,
// followed by a separator).
func IsSRS(local string) bool {
	return len(local) >= 5 && (strings.EqualFold(local[:4], "SRS0") || strings.EqualFold(local[:4], "SRS1")) &&
		strings.IndexByte("=+-", local[4]) >= 0
}

// Forward returns sender rewritten at the forwarder's domain: SRS0 for a plain address, SRS1
// for an SRS0 or SRS1 address of another forwarder. An address already in the forwarder's
// domain is returned as it is (it passes SPF there).
func (s *SRS) Forward(sender string) (string, error) {
	at := strings.LastIndexByte(sender, '@')
	if at <= 0 || at == len(sender)-1 || len(sender) > maxAddrLen {
		return "", fmt.Errorf("srs: cannot rewrite %q: not local@domain", sender)
	}
	user, host := sender[:at], sender[at+1:]
	if strings.EqualFold(host, s.o.Domain) {
		return sender, nil
	}
	sep := string(s.o.Separator)
	if len(user) > 5 && strings.EqualFold(user[:4], "SRS1") && strings.IndexByte("=+-", user[4]) >= 0 {
		// SRS1=HHHH=first.test==HHHH=TT=host=user: keep the first forwarder and its SRS0 part.
		_, rest, ok := strings.Cut(user[5:], "=")
		if !ok {
			return "", fmt.Errorf("%w: %q: no host in SRS1 address", ErrSyntax, sender)
		}
		srsHost, srsUser, ok := strings.Cut(rest, "=")
		if !ok || srsHost == "" || srsUser == "" {
			return "", fmt.Errorf("%w: %q: no user in SRS1 address", ErrSyntax, sender)
		}
		return "SRS1" + sep + s.hash(0, srsHost, srsUser) + "=" + srsHost + "=" + srsUser + "@" + s.o.Domain, nil
	}
	if len(user) > 5 && strings.EqualFold(user[:4], "SRS0") && strings.IndexByte("=+-", user[4]) >= 0 {
		srsUser := user[4:] // from the separator on
		return "SRS1" + sep + s.hash(0, host, srsUser) + "=" + host + "=" + srsUser + "@" + s.o.Domain, nil
	}
	ts := timestamp(s.o.Now())
	return "SRS0" + sep + s.hash(0, ts, host, user) + "=" + ts + "=" + host + "=" + user + "@" + s.o.Domain, nil
}

// Reverse returns the address an SRS address stands for: the original sender for SRS0, the
// first forwarder's SRS0 address for SRS1. The domain of addr is not checked (the caller knows
// which of its domains it accepts SRS addresses at).
func (s *SRS) Reverse(addr string) (string, error) {
	if len(addr) > maxAddrLen {
		return "", fmt.Errorf("%w: too long", ErrSyntax)
	}
	user := addr
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		user = addr[:at]
	}
	if !IsSRS(user) {
		return "", fmt.Errorf("%w: %q", ErrNotSRS, addr)
	}
	parts := user[5:]
	if strings.EqualFold(user[:4], "SRS1") {
		hash, rest, ok := strings.Cut(parts, "=")
		if !ok || hash == "" {
			return "", fmt.Errorf("%w: %q: no hash", ErrSyntax, addr)
		}
		host, srsUser, ok := strings.Cut(rest, "=")
		if !ok || host == "" || srsUser == "" {
			return "", fmt.Errorf("%w: %q: no host or user", ErrSyntax, addr)
		}
		if err := s.checkHash(hash, host, srsUser); err != nil {
			return "", fmt.Errorf("%w: %q", err, addr)
		}
		return "SRS0" + srsUser + "@" + host, nil
	}
	f := strings.SplitN(parts, "=", 4)
	if len(f) < 4 || f[0] == "" || f[1] == "" || f[2] == "" || f[3] == "" {
		return "", fmt.Errorf("%w: %q: want SRS0=hash=stamp=domain=local", ErrSyntax, addr)
	}
	hash, ts, host, local := f[0], f[1], f[2], f[3]
	if err := s.checkTime(ts); err != nil {
		return "", fmt.Errorf("%w: %q", err, addr)
	}
	if err := s.checkHash(hash, ts, host, local); err != nil {
		return "", fmt.Errorf("%w: %q", err, addr)
	}
	return local + "@" + host, nil
}

// hash is the first HashLength characters of the base64 HMAC-SHA1, under secret i, of the
// parts ASCII lower-cased, as libsrs2 computes it.
func (s *SRS) hash(i int, parts ...string) string {
	m := hmac.New(sha1.New, s.o.Secrets[i])
	for _, p := range parts {
		m.Write([]byte(asciiLower(p)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:s.o.HashLength]
}

// checkHash compares case-insensitively (a hash may cross a system that folds case), in
// constant time, under every secret.
func (s *SRS) checkHash(hash string, parts ...string) error {
	if len(hash) < s.o.HashLength {
		return ErrBadHash
	}
	hash = asciiLower(hash[:s.o.HashLength])
	for i := range s.o.Secrets {
		if hmac.Equal([]byte(hash), []byte(asciiLower(s.hash(i, parts...)))) {
			return nil
		}
	}
	return ErrBadHash
}

func (s *SRS) checkTime(ts string) error {
	if len(ts) != 2 {
		return ErrExpired
	}
	then := 0
	for i := range 2 {
		n := strings.IndexByte(timeChars, asciiUpper(ts[i]))
		if n < 0 {
			return ErrSyntax
		}
		then = then<<5 | n
	}
	now := int(s.o.Now().Unix()/day) % timeSlots
	for now < then {
		now += timeSlots
	}
	if now > then+s.o.MaxAge {
		return ErrExpired
	}
	return nil
}

// timestamp is the day of t in two base32 characters.
func timestamp(t time.Time) string {
	d := t.Unix() / day
	return string([]byte{timeChars[(d>>5)&31], timeChars[d&31]})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func asciiUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
