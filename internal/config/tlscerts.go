package config

import (
	"errors"
	"fmt"
	"time"
)

// CertPair is one certificate of tls.certs.
type CertPair struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// defaultTLS looks at the certificate files once a minute: a renewal is served within a
// minute, at the cost of two small reads.
func defaultTLS() TLS {
	return TLS{Certs: []CertPair{}, Reload: Duration{time.Minute}}
}

// Pairs returns every configured certificate, the default first: cert and key, then certs.
// None: the self-signed certificate is used.
func (t TLS) Pairs() []CertPair {
	var pairs []CertPair
	if t.Cert != "" {
		pairs = append(pairs, CertPair{Cert: t.Cert, Key: t.Key})
	}
	return append(pairs, t.Certs...)
}

func (t TLS) validate() []error {
	var errs []error
	for i, p := range t.Certs {
		if p.Cert == "" || p.Key == "" {
			errs = append(errs, fmt.Errorf("tls.certs[%d]: both cert and key are needed", i))
		}
	}
	if t.Reload.Duration < 0 {
		errs = append(errs, errors.New("tls.reload must not be negative (0: only on SIGHUP)"))
	}
	return errs
}
