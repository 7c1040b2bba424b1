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
		fs = append(fs, milter.New(milter.Config{
			Name:           m.Name,
			Network:        network,
			Address:        addr,
			Roles:          roles(m.Listeners),
			ConnectTimeout: m.ConnectTimeout.Duration,
			CommandTimeout: m.CommandTimeout.Duration,
			EOMTimeout:     m.EOMTimeout.Duration,
			TempFail:       m.DefaultAction == "tempfail",
			Logger:         log,
		}))
	}
	if r := cfg.Rspamd; r.URL != "" {
		fs = append(fs, rspamd.New(rspamd.Config{
			URL:      r.URL,
			Password: r.Password,
			Roles:    roles(r.Listeners),
			Timeout:  r.Timeout.Duration,
			TempFail: r.DefaultAction == "tempfail",
			Logger:   log,
		}))
	}
	return fs
}

// roles maps the configuration's listener names to roles (config.Validate checked them).
func roles(names []string) []smtpserver.Role {
	byName := map[string]smtpserver.Role{
		"smtp": smtpserver.RoleMX, "submission": smtpserver.RoleSubmission, "submissions": smtpserver.RoleSubmissions,
	}
	var rs []smtpserver.Role
	for _, n := range names {
		if r, ok := byName[n]; ok {
			rs = append(rs, r)
		}
	}
	return rs
}
