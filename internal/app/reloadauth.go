package app

import (
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// liveAuth is the AUTH of the sessions that start under cfg: base's state (the credentials,
// the failure limiter with its counts and the blocks in force, GSSAPI's acceptor, the senders
// check) with cfg's mechanisms, flags and failure limits; nil when cfg offers no mechanism, as
// at start. The limiter is shared with the sessions in progress: its new limits apply to them
// too from their next attempt.
func liveAuth(base *smtpserver.AuthOptions, cfg config.Config) *smtpserver.AuthOptions {
	if base.Limiter != nil {
		base.Limiter.SetLimits(authLimits(cfg.Auth))
	}
	if len(cfg.Auth.Mechanisms) == 0 {
		return nil
	}
	a := *base
	setAuth(&a, cfg)
	return &a
}
