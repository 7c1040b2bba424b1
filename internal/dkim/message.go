package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
)

// KeySource gives the active signing keys of a domain (normalized), none when it has none.
type KeySource func(ctx context.Context, domain string) ([]SigningKey, error)

// MessageSigner signs a message with the keys of the domain of its From field. Keys are asked of
// its KeySource at most once per TTL and domain, so that a busy queue does not read the store
// and parse the keys for each message, while a key made or rotated is used within the TTL.
// It is safe for concurrent use.
type MessageSigner struct {
	keys KeySource
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKeys
}

type cachedKeys struct {
	keys    []SigningKey
	expires time.Time
}

// NewMessageSigner returns a MessageSigner over keys; now is the clock of its cache.
func NewMessageSigner(keys KeySource, ttl time.Duration, now func() time.Time) *MessageSigner {
	return &MessageSigner{keys: keys, ttl: ttl, now: now, cache: make(map[string]cachedKeys)}
}

// Sign reads a message (CRLF line ends) from r and returns the DKIM-Signature fields to put
// in front of it, as Sign does, with the keys of the domain of its From field or, when that
// domain has none, of its nearest parent domain that has some: a report From
// MAILER-DAEMON@mx.example.org is signed by example.org, which DMARC's relaxed alignment
// (RFC 7489 §3.1.1) accepts. It returns "" when no such domain has a key, or when From has
// mailboxes of several domains (one d= cannot align with all of them).
func (m *MessageSigner) Sign(ctx context.Context, r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	fields, head, err := readHeader(br)
	if err != nil {
		return "", err
	}
	domain, err := fromDomain(fields)
	if err != nil || domain == "" {
		return "", err
	}
	for d := domain; strings.Contains(d, "."); _, d, _ = strings.Cut(d, ".") {
		keys, err := m.domainKeys(ctx, d)
		if err != nil {
			return "", err
		}
		if len(keys) > 0 {
			return Sign(io.MultiReader(bytes.NewReader(head), br), keys)
		}
	}
	return "", nil
}

// domainKeys returns the keys of domain, from the cache while it is fresh.
func (m *MessageSigner) domainKeys(ctx context.Context, domain string) ([]SigningKey, error) {
	now := m.now()
	m.mu.Lock()
	c, ok := m.cache[domain]
	m.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.keys, nil
	}
	keys, err := m.keys(ctx, domain)
	if err != nil {
		return nil, err // not cached: the next message asks again
	}
	m.mu.Lock()
	if len(m.cache) >= maxCachedDomains {
		// One entry per From domain and parent seen: without this, years of mail from many
		// domains would keep them all. Expired entries go first; if all are fresh, all go.
		for d, c := range m.cache {
			if !now.Before(c.expires) {
				delete(m.cache, d)
			}
		}
		if len(m.cache) >= maxCachedDomains {
			clear(m.cache)
		}
	}
	m.cache[domain] = cachedKeys{keys: keys, expires: now.Add(m.ttl)}
	m.mu.Unlock()
	return keys, nil
}

// maxCachedDomains bounds the key cache of a MessageSigner.
const maxCachedDomains = 10000

// fromDomain is the domain of the mailboxes of the From field, in A-labels and lower case; ""
// when they are of several domains. A message without a From, or with one that does not parse,
// is an error.
func fromDomain(fields []field) (string, error) {
	var from []field
	for _, f := range fields {
		if strings.EqualFold(f.name, "From") {
			from = append(from, f)
		}
	}
	if len(from) != 1 {
		return "", fmt.Errorf("dkim: the message has %d From fields", len(from))
	}
	addrs, err := mail.ParseAddressList(from[0].value())
	if err != nil {
		return "", fmt.Errorf("dkim: From: %w", err)
	}
	domain := ""
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return "", errors.New("dkim: From: an address without a domain")
		}
		// An internationalized domain is stored, and signed for (d=), as its A-labels (RFC 8616 §4).
		d, err := idna.Lookup.ToASCII(strings.TrimSuffix(a.Address[at+1:], "."))
		if err != nil {
			return "", fmt.Errorf("dkim: From: %w", err)
		}
		d = strings.ToLower(d)
		if domain != "" && d != domain {
			return "", nil
		}
		domain = d
	}
	return domain, nil
}
