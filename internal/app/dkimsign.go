package app

import (
	"context"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/dkim"
)

// dkimKeyTTL is how long remote delivery keeps the keys of a domain before it reads them again:
// a store read and a key parse per message would be waste, and a key made or rotated with
// tern dkim (which writes to the store, not to the server) signs within a minute.
const dkimKeyTTL = time.Minute

// storeKeys gives remote delivery the active DKIM keys of the account store. The store is
// opened after remote delivery is built (which writes nothing), so Build sets it then, before
// anything is delivered.
type storeKeys struct {
	store accounts.Store
}

// signer is the DKIM signer of outgoing mail over these keys.
func (k *storeKeys) signer(now func() time.Time) *dkim.MessageSigner {
	return dkim.NewMessageSigner(k.active, dkimKeyTTL, now)
}

// active is a dkim.KeySource: the parsed active keys of domain. A key that does not parse
// fails the signing of the domain's mail (logged by remote delivery), rather than sign
// with fewer keys unnoticed.
func (k *storeKeys) active(ctx context.Context, domain string) ([]dkim.SigningKey, error) {
	stored, err := k.store.DKIMKeys(ctx, domain)
	if err != nil {
		return nil, err
	}
	var keys []dkim.SigningKey
	for _, s := range stored {
		if s.State != accounts.DKIMActive {
			continue
		}
		signer, err := dkim.ParseKey(dkim.Algorithm(s.Algorithm), s.Private)
		if err != nil {
			return nil, fmt.Errorf("DKIM key %s of %s: %w", s.Selector, s.Domain, err)
		}
		keys = append(keys, dkim.SigningKey{Domain: s.Domain, Selector: s.Selector, Signer: signer})
	}
	return keys, nil
}
