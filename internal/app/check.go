package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// Check finds everything Build would refuse in cfg before it binds a port or writes a file:
// the settings (cfg.Validate) and the files they name. tern config check reports it; Build
// runs the same checks, so that a config check passes exactly when serve would start (short
// of a port in use or a data directory held by a running server).
func Check(cfg config.Config) error { return check(cfg, true) }

// CheckReload is Check for a reload: the certificate files are left to the reload of the
// certificates, which keeps serving the previous pair when the new one is bad (a renewal caught
// halfway), instead of refusing the whole configuration for them.
func CheckReload(cfg config.Config) error { return check(cfg, false) }

func check(cfg config.Config, certs bool) error {
	// The files are read even when a setting is wrong, so that one run reports everything.
	verr := cfg.Validate()
	_, ferr := preflight(cfg, certs, slog.New(slog.DiscardHandler))
	return errors.Join(verr, ferr, checkDataDir(cfg.Data))
}

// preflight reads and checks the files cfg names (the certificate and its key, the keytab
// and principal map), without writing anything; it returns the GSSAPI
// acceptor it made on the way. Every problem is reported, each naming its setting first.
func preflight(cfg config.Config, certs bool, log *slog.Logger) (*sasl.GSSAPIAcceptor, error) {
	var errs []error
	gss, err := gssapiAcceptor(cfg, log)
	if err != nil {
		errs = append(errs, err)
	}
	// The same loader as the certificate set's: it also refuses a key that is not the
	// certificate's.
	load := func(what, cert, key string) {
		if _, err := tlsutil.LoadFiles(cert, key); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if certs {
		if cfg.TLS.Cert != "" {
			load("tls.cert and tls.key", cfg.TLS.Cert, cfg.TLS.Key)
		}
		for i, p := range cfg.TLS.Certs {
			load(fmt.Sprintf("tls.certs[%d]", i), p.Cert, p.Key)
		}
	}
	// What Build parses only after binding, parsed here first.
	if _, err := dnsblSites(cfg.Screen); err != nil {
		errs = append(errs, err)
	}
	return gss, errors.Join(errs...)
}

// checkDataDir foresees, without writing, what Build finds when it makes and locks the data
// directory dir, in the same words: a directory that exists but is not one, or that this user
// may not write in, or a missing one this user may not make. (A running server's lock is no
// problem here: a check runs beside it, before a restart.)
func checkDataDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || filepath.Dir(parent) == parent {
				break
			}
			parent = filepath.Dir(parent)
		}
		if err := unix.Access(parent, unix.W_OK|unix.X_OK); err != nil {
			return explainData(dir, "cannot create the data directory", &fs.PathError{Op: "mkdir", Path: dir, Err: err})
		}
		return nil
	case err != nil:
		return explainData(dir, "cannot create the data directory", err)
	case !fi.IsDir():
		return explainData(dir, "cannot create the data directory", &fs.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR})
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return explainData(dir, "cannot lock the data directory", &fs.PathError{Op: "open", Path: filepath.Join(dir, "tern.lock"), Err: err})
	}
	return nil
}
