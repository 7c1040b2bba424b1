package app

import (
	"log/slog"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/milter"
	"github.com/tern-mail/tern/internal/rspamd"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// contentFilters builds the session's content filters from the configuration: the milters in
// their order, then rspamd.
func contentFilters(cfg config.Config, log *slog.Logger) []smtpserver.Filter {
	var fs []smtpserver.Filter
	for _, m := range cfg.Milters {
		network, addr, err := milter.ParseAddress(m.Address)
		if err != nil {
			continue // config.Validate refused it already
		}
		fs = append(fs, byListener{names: m.Listeners, Filter: milter.New(milter.Config{
			Name:           m.Name,
			Network:        network,
			Address:        addr,
			Roles:          allRoles, // byListener picks (listeners.go)
			ConnectTimeout: m.ConnectTimeout.Duration,
			CommandTimeout: m.CommandTimeout.Duration,
			EOMTimeout:     m.EOMTimeout.Duration,
			TempFail:       m.DefaultAction == "tempfail",
			Logger:         log,
		})})
	}
	if r := cfg.Rspamd; r.URL != "" {
		fs = append(fs, byListener{names: r.Listeners, Filter: rspamd.New(rspamd.Config{
			URL:      r.URL,
			Password: r.Password,
			Roles:    allRoles, // byListener picks (listeners.go)
			Timeout:  r.Timeout.Duration,
			TempFail: r.DefaultAction == "tempfail",
			Logger:   log,
		})})
	}
	return fs
}
