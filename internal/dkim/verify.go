package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// Status is the result of one signature's check, as RFC 8601 §2.7.1 names it for the dkim
// method of an Authentication-Results field.
type Status string

const (
	// None: the message has no signature.
	None Status = "none"
	// Pass: the signature verified with its published key.
	Pass Status = "pass"
	// Fail: the signature or the body hash does not match: the message changed after signing,
	// or the signature was forged.
	Fail Status = "fail"
	// Neutral: the signature may be genuine but tern does not count it (a body length tag).
	Neutral Status = "neutral"
	// TempError: the key could not be fetched for now (DNS timeout or server failure); a later
	// try may pass.
	TempError Status = "temperror"
	// PermError: the signature cannot be checked: malformed, no key, revoked or too weak a key
	// (RFC 8301), an algorithm that is not allowed (rsa-sha1).
	PermError Status = "permerror"
)

// MaxSignatures is how many signatures Verify checks in one message: each costs a DNS lookup
// and a pass over the body, and a message carrying dozens is an attack on the verifier, not
// mail. Mail rarely carries more than 3 (the author's domain, its ESP, a mailing list).
const MaxSignatures = 5

// Result is the outcome of one signature, with what an Authentication-Results field shows of it
// (RFC 8601 §2.7.1: header.d, header.s, header.a, header.i, header.b of RFC 6008).
type Result struct {
	Status     Status
	Domain     string // d=
	Selector   string // s=
	Algorithm  string // a=, e.g. rsa-sha256
	Identifier string // i=, or "@" and d= when absent
	HeaderB    string // the first 12 characters of b=, which tell two signatures apart (RFC 6008)
	Reason     string // why it is not a pass, in plain words
}

// ErrNoRecord is what a Resolver returns (wrapped) for a name that does not exist or has no
// TXT record: that is a permanent "no key" (permerror), where any other lookup error is
// temporary (temperror).
var ErrNoRecord = errors.New("dkim: no such DNS record")

// Resolver looks key records up. tern's DNS resolver (the one --resolver configures) backs it
// in the server; tests use a map. Verify looks the keys of several signatures up at once, so
// it must be safe for concurrent use.
type Resolver interface {
	// LookupTXT returns the TXT records at name, each one's strings joined without separator
	// (RFC 6376 §3.6.2.2). A name without TXT records gives an empty list or ErrNoRecord.
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Verification is the outcome of Verify: a result per signature checked (one None result when
// there is no signature) and how many signatures past MaxSignatures were not looked at.
type Verification struct {
	Results []Result
	Skipped int
}

// Verify checks up to MaxSignatures DKIM-Signature fields of a message read from r (CRLF line
// ends), streaming its body once past all the verifiers. RFC 8301's floors hold: rsa-sha1 and
// RSA keys under 1024 bits are permerror. A signature with a body length tag (l=) is Neutral
// and never Pass, whether or not l= covers the whole body: RFC 6376 §8.2 warns that content
// appended after the signed length is not covered, and that attack is practical (anyone can
// add an HTML part that hides the signed one); it is not Fail, since the signature may be the
// sender's own. The error is only for a message that cannot be read; every problem of a
// signature is in its Result.
func Verify(ctx context.Context, r io.Reader, res Resolver) (Verification, error) {
	br := bufio.NewReader(r)
	fields, head, err := readHeader(br)
	if err != nil {
		return Verification{}, err
	}
	var sigs []field
	for _, f := range fields {
		if strings.EqualFold(f.name, "DKIM-Signature") {
			sigs = append(sigs, f)
		}
	}
	if len(sigs) == 0 {
		return Verification{Results: []Result{{Status: None, Reason: "no signature"}}}, nil
	}
	v := Verification{}
	if len(sigs) > MaxSignatures {
		v.Skipped = len(sigs) - MaxSignatures
		sigs = sigs[:MaxSignatures]
	}
	verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(head), br), &dkim.VerifyOptions{
		LookupTXT:        lookupFunc(ctx, res),
		MaxVerifications: MaxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return Verification{}, fmt.Errorf("dkim: verify: %w", err)
	}
	if len(verifs) != len(sigs) {
		return Verification{}, fmt.Errorf("dkim: verify: %d results for %d signatures", len(verifs), len(sigs))
	}
	for i, sig := range sigs {
		v.Results = append(v.Results, result(sig, verifs[i]))
	}
	return v, nil
}

// result makes the Result of one signature from go-msgauth's verdict and the signature's tags.
func result(sig field, vf *dkim.Verification) Result {
	r := Result{Domain: vf.Domain, Identifier: vf.Identifier}
	tags, tagErr := parseTags(sig.value())
	if tagErr == nil {
		r.Selector = stripSpace(tags["s"])
		r.Algorithm = stripSpace(tags["a"])
		b := stripSpace(tags["b"])
		r.HeaderB = b[:min(12, len(b))]
	}
	_, hasLength := tags["l"]
	switch err := vf.Err; {
	case err == nil:
		r.Status = Pass
	case dkim.IsTempFail(err):
		r.Status, r.Reason = TempError, err.Error()
	case dkim.IsPermFail(err):
		r.Status, r.Reason = PermError, err.Error()
	case hasLength:
		// go-msgauth refuses l= after the key checks with a fail; see Verify for why tern
		// says neutral.
		r.Status, r.Reason = Neutral, "body length tag l= (content after it would not be covered): not counted"
	default:
		r.Status, r.Reason = Fail, err.Error()
	}
	return r
}

// stripSpace removes the folding whitespace that tag values may contain (RFC 6376 §3.2).
func stripSpace(s string) string {
	return strings.Map(func(c rune) rune {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return -1
		}
		return c
	}, s)
}

// lookupFunc adapts res to go-msgauth, which takes no context and tells a temporary failure
// (temperror) from a permanent one (permerror, "no key") by net.Error's Temporary.
func lookupFunc(ctx context.Context, res Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txts, err := res.LookupTXT(ctx, name)
		switch {
		case err == nil:
			return txts, nil
		case errors.Is(err, ErrNoRecord):
			return nil, err
		}
		return nil, tempError{err}
	}
}

// tempError marks a lookup failure as temporary for go-msgauth.
type tempError struct{ err error }

func (e tempError) Error() string   { return e.err.Error() }
func (e tempError) Unwrap() error   { return e.err }
func (e tempError) Timeout() bool   { return false }
func (e tempError) Temporary() bool { return true }
