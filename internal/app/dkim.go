package app

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dkim"
)

// DKIMRequest is what tern dkim keygen and rotate ask for.
type DKIMRequest struct {
	Domain    string
	Selector  string // "" for the default, <yyyymmdd>-<algorithm>
	Algorithm string // "" for keygen's rsa, or rotate's "every algorithm the domain signs with"
	Now       time.Time
}

// withDKIM runs f on the account store, which the DKIM keys share with the accounts: in an
// existing data directory (made there if it has no accounts yet), or where accounts.url says.
func withDKIM(cfg config.Config, f func(s accounts.Store) error) (err error) {
	data, err := storeData(cfg, false)
	if err != nil {
		return err
	}
	s, err := openStore(cfg, data, true)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil && cerr != nil {
			err = dataError(data, "the account database failed", cerr)
		}
	}()
	if err = f(s); err != nil {
		return dataError(data, "the account database failed", err)
	}
	return nil
}

// DKIMKeygen makes a key for a domain, stores it active, and prints its TXT record. A domain
// has at most one active key per algorithm: a second one is tern dkim rotate's business.
func DKIMKeygen(ctx context.Context, cfg config.Config, req DKIMRequest, w io.Writer) error {
	return withDomainKeys(ctx, cfg, &req, dkim.RSA, func(s accounts.Store, keys []accounts.DKIMKey, domain string, alg dkim.Algorithm) error {
		for _, k := range keys {
			if k.Algorithm == string(alg) && k.State == accounts.DKIMActive {
				return errorf(nil, "%s already has the active %s key %s (tern dkim rotate %s makes a new one)", domain, alg, k.Selector, domain)
			}
		}
		return addDKIMKey(ctx, s, keys, req, domain, alg, accounts.DKIMActive, w)
	})
}

// DKIMRotate makes a new published key per algorithm the domain signs with (or the one asked
// for), or with activate switches the published keys to active and retires the keys they
// replace, which stay stored (and should stay published) so that mail signed with them still
// verifies.
func DKIMRotate(ctx context.Context, cfg config.Config, req DKIMRequest, activate bool, w io.Writer) error {
	return withDomainKeys(ctx, cfg, &req, "", func(s accounts.Store, keys []accounts.DKIMKey, domain string, alg dkim.Algorithm) error {
		if activate {
			return activateDKIM(ctx, s, keys, domain, alg, w)
		}
		algs := map[dkim.Algorithm]bool{}
		for _, k := range keys {
			if (alg == "" || string(alg) == k.Algorithm) && k.State == accounts.DKIMPublished {
				return errorf(nil, "%s already has the published %s key %s waiting (tern dkim rotate %s --activate switches to it)", domain, k.Algorithm, k.Selector, domain)
			}
			if k.State == accounts.DKIMActive {
				algs[dkim.Algorithm(k.Algorithm)] = true
			}
		}
		if alg != "" {
			algs = map[dkim.Algorithm]bool{alg: true}
		}
		if len(algs) == 0 {
			return errorf(nil, "%s has no active DKIM key to rotate (tern dkim keygen %s makes one)", domain, domain)
		}
		if req.Selector != "" && len(algs) > 1 {
			return errorf(nil, "%s signs with rsa and ed25519: give --algorithm with --selector", domain)
		}
		for _, a := range []dkim.Algorithm{dkim.RSA, dkim.Ed25519} {
			if !algs[a] {
				continue
			}
			if err := addDKIMKey(ctx, s, keys, req, domain, a, accounts.DKIMPublished, w); err != nil {
				return err
			}
		}
		_, err := fmt.Fprintf(w, "Publish the record, wait for its TTL to pass, then run tern dkim rotate %s --activate.\n", domain)
		return err
	})
}

// withDomainKeys checks req (def is the algorithm when none is given) and runs f on the store
// with the domain's keys.
func withDomainKeys(ctx context.Context, cfg config.Config, req *DKIMRequest, def dkim.Algorithm,
	f func(s accounts.Store, keys []accounts.DKIMKey, domain string, alg dkim.Algorithm) error) error {
	domain, alg, err := checkDKIMRequest(req, def)
	if err != nil {
		return err
	}
	return withDKIM(cfg, func(s accounts.Store) error {
		keys, err := s.DKIMKeys(ctx, domain)
		if err != nil {
			return err
		}
		return f(s, keys, domain, alg)
	})
}

// activateDKIM switches every published key of domain (of alg, if given) to active and retires
// the active keys of the same algorithms, in one transaction.
func activateDKIM(ctx context.Context, s accounts.Store, keys []accounts.DKIMKey, domain string, alg dkim.Algorithm, w io.Writer) error {
	changes := map[string]accounts.DKIMState{}
	switched := map[string]bool{}
	for _, k := range keys {
		if (alg == "" || string(alg) == k.Algorithm) && k.State == accounts.DKIMPublished {
			changes[k.Selector] = accounts.DKIMActive
			switched[k.Algorithm] = true
		}
	}
	if len(changes) == 0 {
		return errorf(nil, "%s has no published key to activate (tern dkim rotate %s makes one)", domain, domain)
	}
	for _, k := range keys {
		if switched[k.Algorithm] && k.State == accounts.DKIMActive {
			changes[k.Selector] = accounts.DKIMRetired
		}
	}
	if err := s.SetDKIMStates(ctx, domain, changes); err != nil {
		return err
	}
	for _, k := range keys {
		if st, ok := changes[k.Selector]; ok {
			if _, err := fmt.Fprintf(w, "%s key %s of %s: %s\n", k.Algorithm, k.Selector, domain, st); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintln(w, "Keep the records of retired keys published for a few days: mail signed with them may still be on its way.")
	return err
}

// checkDKIMRequest checks the domain, the selector and the algorithm (def when none is given)
// of req, and fills req.Now when unset.
func checkDKIMRequest(req *DKIMRequest, def dkim.Algorithm) (string, dkim.Algorithm, error) {
	domain, err := dkim.NormalizeDomain(req.Domain)
	if err != nil {
		return "", "", errorf(err, "%v", strings.TrimPrefix(err.Error(), "dkim: "))
	}
	if req.Selector != "" {
		if err := dkim.CheckSelector(req.Selector); err != nil {
			return "", "", errorf(err, "%v", strings.TrimPrefix(err.Error(), "dkim: "))
		}
	}
	alg := def
	if req.Algorithm != "" {
		if alg, err = dkim.ParseAlgorithm(req.Algorithm); err != nil {
			return "", "", errorf(err, "%v", strings.TrimPrefix(err.Error(), "dkim: "))
		}
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	return domain, alg, nil
}

// addDKIMKey makes a key of alg for domain, stores it in state and prints its record.
func addDKIMKey(ctx context.Context, s accounts.Store, keys []accounts.DKIMKey, req DKIMRequest, domain string, alg dkim.Algorithm, state accounts.DKIMState, w io.Writer) error {
	sel := req.Selector
	if sel == "" {
		sel = defaultSelector(keys, alg, req.Now)
	}
	k, blob, err := dkim.GenerateKey(alg)
	if err != nil {
		return err
	}
	err = s.AddDKIMKey(ctx, accounts.DKIMKey{Domain: domain, Selector: sel, Algorithm: string(alg), State: state, Created: req.Now, Private: blob})
	if errors.Is(err, accounts.ErrExists) {
		return errorf(err, "%s already has a key with selector %s (tern dkim list shows them)", domain, sel)
	}
	if err != nil {
		return err
	}
	rec, err := zoneLine(sel, domain, k)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "Made the %s key %s of %s (%s). Its DNS record, ready for a zone file:\n%s\n", alg, sel, domain, state, rec)
	return err
}

// defaultSelector is <yyyymmdd>-<algorithm> (UTC), with -2, -3... when the domain has it
// already: the date tells an administrator how old a key is, the algorithm keeps the rsa and
// the ed25519 key made the same day apart.
func defaultSelector(keys []accounts.DKIMKey, alg dkim.Algorithm, now time.Time) string {
	base := now.UTC().Format("20060102") + "-" + string(alg)
	taken := map[string]bool{}
	for _, k := range keys {
		taken[k.Selector] = true
	}
	sel := base
	for i := 2; taken[sel]; i++ {
		sel = fmt.Sprintf("%s-%d", base, i)
	}
	return sel
}

// zoneLine is the key record of k as a zone file line.
func zoneLine(sel, domain string, k crypto.Signer) (string, error) {
	v, err := dkim.TXTValue(k)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s. IN TXT %s", dkim.RecordName(sel, domain), dkim.ZoneStrings(v)), nil
}

// DKIMList prints the DKIM keys of every domain and, with records, the TXT record of each.
func DKIMList(ctx context.Context, cfg config.Config, records bool, w io.Writer) error {
	return withDKIM(cfg, func(s accounts.Store) error {
		keys, err := s.DKIMKeys(ctx, "")
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			_, err := fmt.Fprintln(w, "No DKIM keys (tern dkim keygen DOMAIN makes one).")
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if _, err := fmt.Fprintln(tw, "DOMAIN\tSELECTOR\tALGORITHM\tSTATE\tCREATED"); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Domain, k.Selector, k.Algorithm, k.State, k.Created.UTC().Format(time.RFC3339)); err != nil {
				return err
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if !records {
			return nil
		}
		for _, k := range keys {
			rec := ""
			signer, err := dkim.ParseKey(dkim.Algorithm(k.Algorithm), k.Private)
			if err == nil {
				rec, err = zoneLine(k.Selector, k.Domain, signer)
			}
			if err != nil {
				rec = fmt.Sprintf("; %s of %s: the stored key is unusable: %v", k.Selector, k.Domain, err)
			}
			if _, err := fmt.Fprintln(w, rec); err != nil {
				return err
			}
		}
		return nil
	})
}
