package sasl

import (
	"errors"
	"fmt"
	"strings"
)

// NewScramClientNonce is NewScramClient for SCRAM-SHA-1 or SCRAM-SHA-256 with the client
// nonce fixed instead of drawn from crypto/rand, for reproducing RFC 5802 §5 and RFC 7677 §3
// (tern auth --nonce). The -PLUS names are refused at Start: they need a TLS connection to
// bind to. nonce must be printable ASCII without ',' (RFC 5802 §7, c-nonce).
//
// A fixed nonce is predictable, which SCRAM's security does not allow for: use it for test
// vectors only.
func NewScramClientNonce(mech, authzid, user, password, nonce string) Client {
	if err := checkScramNonce(nonce); err != nil {
		return failedClient{err}
	}
	c := NewScramClient(mech, authzid, user, password, nil).(*scramClient)
	c.nonce = func() string { return nonce }
	return c
}

// checkScramNonce checks a c-nonce: RFC 5802 §7 printable, "%x21-2B / %x2D-7E".
func checkScramNonce(nonce string) error {
	if nonce == "" {
		return errors.New("sasl: SCRAM: empty nonce")
	}
	if i := strings.IndexFunc(nonce, func(r rune) bool { return r < 0x21 || r > 0x7e || r == ',' }); i >= 0 {
		return fmt.Errorf("sasl: SCRAM: nonce character %q at %d is not printable ASCII other than ','", nonce[i], i)
	}
	return nil
}

// failedClient is a Client whose construction failed: every call returns the error.
type failedClient struct{ err error }

func (c failedClient) Start() (string, []byte, error) { return "", nil, c.err }
func (c failedClient) Next([]byte) ([]byte, error)    { return nil, c.err }
