package app

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/sasl"
)

// credentials serve the SASL mechanisms from the account store. A login name without a domain
// (the seeds' "kenneth.burgener") is taken in the default domain, as Dovecot's
// auth_default_realm does; an unknown or impossible name is answered like a wrong password.
type credentials struct {
	store         accounts.Store
	defaultDomain atomic.Pointer[string] // the first local domain; a reload changes it
	// hashing bounds the password checks running at once: each argon2id check takes 19 MiB and
	// tens of milliseconds, so a burst of AUTH PLAIN must queue, not exhaust memory.
	hashing chan struct{}
}

var (
	_ sasl.Credentials    = (*credentials)(nil)
	_ sasl.AccountChecker = (*credentials)(nil)
)

func newCredentials(store accounts.Store, defaultDomain string) *credentials {
	c := &credentials{store: store, hashing: make(chan struct{}, 2*runtime.NumCPU())}
	c.setDefaultDomain(defaultDomain)
	return c
}

// setDefaultDomain makes domain the one of the logins without a domain from now on.
func (c *credentials) setDefaultDomain(domain string) { c.defaultDomain.Store(&domain) }

func (c *credentials) account(login string) (string, error) {
	if !strings.Contains(login, "@") {
		login += "@" + *c.defaultDomain.Load()
	}
	acct, err := accounts.NormalizeAddress(login)
	if err != nil {
		return "", fmt.Errorf("%w: %v", sasl.ErrAuthFailed, err)
	}
	return acct, nil
}

// limiterAccount is the account the AUTH limiter counts a login's failures for: the one
// CheckPassword and Secret would look up, so that every spelling of it shares one budget.
func (c *credentials) limiterAccount(login string) (string, bool) {
	acct, err := c.account(login)
	return acct, err == nil
}

func (c *credentials) CheckPassword(ctx context.Context, login, password string) (string, error) {
	acct, err := c.account(login)
	if err != nil {
		return "", err
	}
	select {
	case c.hashing <- struct{}{}:
		defer func() { <-c.hashing }()
	case <-ctx.Done():
		return "", fmt.Errorf("%w: %v", sasl.ErrUnavailable, ctx.Err())
	}
	ok, err := c.store.Verify(ctx, acct, password)
	if err != nil {
		return "", fmt.Errorf("%w: %v", sasl.ErrUnavailable, err)
	}
	if !ok {
		return "", sasl.ErrAuthFailed
	}
	return acct, nil
}

// Account is sasl.AccountChecker, for GSSAPI: the KDC has authenticated the client, and only
// the account's existence is left to check.
func (c *credentials) Account(ctx context.Context, login string) (string, error) {
	acct, err := c.account(login)
	if err != nil {
		return "", err
	}
	ok, err := c.store.Exists(ctx, acct)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %v", sasl.ErrUnavailable, err)
	case !ok:
		return "", fmt.Errorf("%w: no account %s", sasl.ErrAuthFailed, acct)
	}
	// The KDC knows nothing of a disabled account: it is refused here.
	switch disabled, err := c.store.IsDisabled(ctx, acct); {
	case err != nil:
		return "", fmt.Errorf("%w: %v", sasl.ErrUnavailable, err)
	case disabled:
		return "", fmt.Errorf("%w: account %s is disabled", sasl.ErrAuthFailed, acct)
	}
	return acct, nil
}

func (c *credentials) Secret(ctx context.Context, login, kind string) (string, []byte, error) {
	acct, err := c.account(login)
	if err != nil {
		return "", nil, err
	}
	secret, err := c.store.Secret(ctx, acct, kind)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		// No such user, or no secret for this mechanism: the password was set before it was
		// switched on. The client is told the same either way; the log says what to run.
		if disabled, _ := c.store.IsDisabled(ctx, acct); disabled {
			return "", nil, fmt.Errorf("%w: account %s is disabled", sasl.ErrAuthFailed, acct)
		}
		if ok, _ := c.store.Exists(ctx, acct); ok {
			return "", nil, fmt.Errorf("%w: no %s secret for %s (its password was set before the mechanism was configured: tern user passwd %s stores one)",
				sasl.ErrAuthFailed, kind, acct, acct)
		}
		return "", nil, fmt.Errorf("%w: no account %s", sasl.ErrAuthFailed, acct)
	case err != nil:
		return "", nil, fmt.Errorf("%w: %v", sasl.ErrUnavailable, err)
	}
	return acct, secret, nil
}
