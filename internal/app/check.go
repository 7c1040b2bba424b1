package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// Check finds everything Build would refuse in cfg before it binds a port or writes a file:
// the settings (cfg.Validate) and the files they name. tern config check reports it; Build
// runs the same checks, so that a config check passes exactly when serve would start (short
// of a port in use or a data directory held by a running server).
func Check(cfg config.Config) error {
	// The files are read even when a setting is wrong, so that one run reports everything.
	verr := cfg.Validate()
	_, ferr := preflight(cfg, slog.New(slog.DiscardHandler))
	return errors.Join(verr, ferr)
}

// preflight reads and checks the files cfg names (the certificate and its key, the keytab
// and principal map) and the data directory, without writing anything; it returns the GSSAPI
// acceptor it made on the way. Every problem is reported, each naming its setting first.
func preflight(cfg config.Config, log *slog.Logger) (*sasl.GSSAPIAcceptor, error) {
	var errs []error
	gss, err := gssapiAcceptor(cfg, log)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.TLS.Cert != "" {
		// The same loader as loadCert: it also refuses a key that is not the certificate's.
		if _, err := tlsutil.LoadFiles(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			errs = append(errs, fmt.Errorf("tls.cert and tls.key: %w", err))
		}
	}
	if err := checkDataDir(cfg.Data); err != nil {
		errs = append(errs, err)
	}
	return gss, errors.Join(errs...)
}

// checkDataDir refuses a data directory that exists but is not a directory tern may write
// in; a missing one is made by serve.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("data %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("data %q: not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("data %q: not writable by this user: %w", dir, err)
	}
	return nil
}
