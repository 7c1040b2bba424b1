package app

import (
	"crypto/tls"

	"github.com/tern-mail/tern/internal/tlsutil"
)

// loadCerts loads the operator's certificates (reloaded on SIGHUP and when their files change)
// or, with none configured, the self-signed one, made on first start; and with [acme] on, the
// ACME manager in front of them.
func (s *Server) loadCerts() error {
	if err := s.loadFileCerts(); err != nil {
		return err
	}
	if !s.cfg.ACME.Enabled {
		return nil
	}
	a, err := newACME(s.cfg, s.data, s.certs, s.log)
	if err != nil {
		return err
	}
	s.acme = a
	if a.httpLn != nil {
		s.release = append(s.release, func() { _ = a.httpLn.Close() }) // best effort: Run's server closed it
	}
	return nil
}

// serverTLS is the TLS configuration every listener gets.
func (s *Server) serverTLS() *tls.Config {
	if s.acme != nil {
		return s.acme.serverTLS()
	}
	return tlsutil.ServerConfigCerts(s.certs)
}

func (s *Server) loadFileCerts() error {
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
