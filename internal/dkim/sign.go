package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// SigningKey is one active key of a domain.
type SigningKey struct {
	Domain   string // d=, normalized (NormalizeDomain)
	Selector string // s=
	Signer   crypto.Signer
}

// signedFields are the header fields signed when present, in this order, after From. The
// list follows mox's default (From, To, Cc, Reply-To, References, In-Reply-To, Subject, Date,
// Message-ID, Content-Type) with the MIME fields and the List-* fields of RFC 2369 and
// RFC 8058 added, as Stalwart signs them: they are what a reader sees or a client acts on
// (List-Unsubscribe-Post performs an action), and the TLS-Report-Domain and
// TLS-Report-Submitter of the TLS reports tern sends (RFC 8460 §5.3), which a receiver files
// reports by. Received, Return-Path and trace fields are left out because relays add to them.
var signedFields = []string{
	"To", "Cc", "Reply-To", "In-Reply-To", "References", "Subject", "Date", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe",
	"List-Post", "List-Owner", "List-Archive",
	"TLS-Report-Domain", "TLS-Report-Submitter",
}

// headerKeys is the h= list for a message with these fields: every listed field as often as
// it occurs, and From once more than it occurs. The extra From is "oversigning"
// (RFC 6376 §8.15): a From added after signing, which a reader could be shown instead of the
// signed one, then breaks the signature. Fields that are absent are not listed, so that a
// mailing list that only adds its List-* fields does not break the signature.
func headerKeys(fields []field) []string {
	count := make(map[string]int)
	for _, f := range fields {
		count[strings.ToLower(f.name)]++
	}
	keys := []string{"From"}
	for range count["from"] {
		keys = append(keys, "From")
	}
	for _, name := range signedFields {
		for range count[strings.ToLower(name)] {
			keys = append(keys, name)
		}
	}
	return keys
}

// Sign reads a message (CRLF line ends) from r and signs it with every key given, relaxed/relaxed,
// each key with its own algorithm (rsa-sha256, ed25519-sha256; RFC 8463 §1 expects a domain to
// sign with both while verifiers learn Ed25519). It returns the DKIM-Signature header fields
// to put in front of the message, each ending in CRLF. The message is streamed: only its
// header section is held in memory.
// Its t= tag is the system clock's time: go-msgauth takes no clock.
func Sign(r io.Reader, keys []SigningKey) (string, error) {
	if len(keys) == 0 {
		return "", errors.New("dkim: no key to sign with")
	}
	br := bufio.NewReader(r)
	fields, head, err := readHeader(br)
	if err != nil {
		return "", err
	}
	if !hasField(fields, "From") {
		// RFC 6376 §5.4: From must be signed, and RFC 5322 §3.6 requires it.
		return "", errors.New("dkim: the message has no From field")
	}
	hk := headerKeys(fields)
	signers := make([]*dkim.Signer, 0, len(keys))
	writers := make([]io.Writer, 0, len(keys))
	closeAll := func() {
		for _, s := range signers {
			_ = s.Close() // stops its goroutine; the error that matters is returned already
		}
	}
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hk,
		})
		if err != nil {
			closeAll()
			return "", fmt.Errorf("dkim: key %s of %s: %w", k.Selector, k.Domain, err)
		}
		signers = append(signers, s)
		writers = append(writers, s)
	}
	if _, err := io.Copy(io.MultiWriter(writers...), io.MultiReader(bytes.NewReader(head), br)); err != nil {
		closeAll()
		return "", fmt.Errorf("dkim: sign: %w", err)
	}
	var out strings.Builder
	var errs []error
	for i, s := range signers {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dkim: key %s of %s: %w", keys[i].Selector, keys[i].Domain, err))
			continue
		}
		out.WriteString(s.Signature())
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return out.String(), nil
}

func hasField(fields []field, name string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}
