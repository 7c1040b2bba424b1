// Package dkim signs and verifies DKIM signatures (RFC 6376, RFC 8463 for Ed25519, RFC 8301's
// floors) over github.com/emersion/go-msgauth/dkim, and owns what tern adds around it: the
// header fields it signs, how a verdict becomes a result of RFC 8601, the key formats (stored
// PKCS #8, published TXT record) and the checks of a domain and a selector.
//
// Sign streams a message past one signer per active key of its domain and returns the
// DKIM-Signature fields to prepend. Verify checks up to MaxSignatures signatures, looking keys
// up through a Resolver that tern's DNS resolver backs, and returns a Result per signature.
//
// MessageSigner is what remote delivery signs with: it finds the domain of a message's From
// (or its nearest parent with keys), asks a KeySource for that domain's active keys, keeping
// them for a TTL, and calls Sign.
//
// It keeps no keys (package accounts stores them), does no DNS itself and decides no policy:
// whether to sign a message, and what to do with a failed signature (DMARC), belong to the
// callers.
package dkim
