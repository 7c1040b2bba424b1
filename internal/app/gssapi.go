package app

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/sasl"
)

// gssapiAcceptor reads the keytab and the principal map file of [auth] gssapi_* (once, at
// start); nil when no keytab is configured. A keytab without a key for the principal is logged
// as a warning and the server starts anyway: every GSSAPI attempt then fails with 535 and the
// same reason in the log, and the other mechanisms keep working.
func gssapiAcceptor(cfg config.Config, log *slog.Logger) (*sasl.GSSAPIAcceptor, error) {
	a := cfg.Auth
	if a.GSSAPIKeytab == "" {
		return nil, nil
	}
	kt, err := os.ReadFile(a.GSSAPIKeytab)
	if err != nil {
		return nil, fmt.Errorf("auth.gssapi_keytab: %w", err)
	}
	var table map[string]string
	if a.GSSAPIMapFile != "" {
		b, err := os.ReadFile(a.GSSAPIMapFile)
		if err != nil {
			return nil, fmt.Errorf("auth.gssapi_map_file: %w", err)
		}
		if table, err = sasl.ParsePrincipalMap(string(b)); err != nil {
			return nil, fmt.Errorf("auth.gssapi_map_file %s: %w", a.GSSAPIMapFile, err)
		}
	}
	principal := a.GSSAPIPrincipal
	if principal == "" {
		principal = "smtp/" + cfg.Hostname
	}
	acc, err := sasl.NewGSSAPIAcceptor(sasl.GSSAPIOptions{
		Keytab:    kt,
		Principal: principal,
		Realm:     a.GSSAPIRealm,
		ClockSkew: a.GSSAPIClockSkew.Duration,
		Map:       sasl.PrincipalMap{Table: table, Local: a.GSSAPIMap == "local"},
	})
	if err != nil {
		return nil, fmt.Errorf("auth.gssapi_keytab %s: %w", a.GSSAPIKeytab, err)
	}
	if err := acc.Check(); err != nil {
		log.Warn("GSSAPI will fail", "keytab", a.GSSAPIKeytab, "err", err)
	} else {
		log.Info("GSSAPI", "principal", acc.Principal(), "keytab", a.GSSAPIKeytab, "map", a.GSSAPIMap)
	}
	return acc, nil
}
