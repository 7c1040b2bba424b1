package app

import (
	"github.com/tern-mail/tern/internal/tlsutil"
)

// loadCerts loads the operator's certificates (reloaded on SIGHUP and when their files change)
// or, with none configured, the self-signed one, made on first start.
func (s *Server) loadCerts() error {
	if pairs := s.cfg.TLS.Pairs(); len(pairs) > 0 {
		tp := make([]tlsutil.Pair, len(pairs))
		for i, p := range pairs {
			tp[i] = tlsutil.Pair{Cert: p.Cert, Key: p.Key}
		}
		certs, err := tlsutil.LoadCerts(tp, s.log)
		if err != nil {
			return err
		}
		s.certs = certs
		s.onReload("TLS certificates", func() error {
			_, err := certs.Reload()
			return err
		})
		return nil
	}
	cert, created, err := tlsutil.LoadOrCreate(tlsPath(s.data), s.cfg.Hostname)
	if err != nil {
		return err
	}
	if created {
		s.log.Info("created a self-signed certificate", "dir", tlsPath(s.data), "hostname", s.cfg.Hostname)
	}
	s.certs = tlsutil.StaticCerts(cert)
	return nil
}
