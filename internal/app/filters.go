package app

import (
	"log/slog"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/milter"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// contentFilters builds the session's content filters from the configuration: the milters in
// their order.
func contentFilters(cfg config.Config, log *slog.Logger) []smtpserver.Filter {
	var fs []smtpserver.Filter
	for _, m := range cfg.Milters {
		network, addr, err := milter.ParseAddress(m.Address)
		if err != nil {
			continue // config.Validate refused it already
		}
		fs = append(fs, milter.New(milter.Config{
			Name:           m.Name,
			Network:        network,
			Address:        addr,
			Roles:          milter.Roles(m.Listeners),
			ConnectTimeout: m.ConnectTimeout.Duration,
			CommandTimeout: m.CommandTimeout.Duration,
			EOMTimeout:     m.EOMTimeout.Duration,
			TempFail:       m.DefaultAction == "tempfail",
			Logger:         log,
		}))
	}
	return fs
}
