package tlsutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pair names a certificate chain file and its private key file, both PEM.
type Pair struct {
	Cert, Key string
}

// Certs serves the certificates of a server: the operator's files, chosen by SNI and reloaded
// when they change, or one fixed certificate. Its GetCertificate goes into every listener's
// tls.Config, so a reload reaches new handshakes on all listeners at once; a connection
// already in TLS keeps the certificate it was handshaken with and is not disturbed.
//
// Safe for concurrent use.
type Certs struct {
	pairs []Pair
	log   *slog.Logger
	cur   atomic.Pointer[certSet]
	mu    sync.Mutex // serialises Reload, so two reloads never interleave their reads
}

// certSet is one loaded generation: byName maps lowercased DNS names ("*.example.com" for a
// wildcard) to the first certificate that names them; def is the first pair's.
type certSet struct {
	certs  []*tls.Certificate
	sums   [][sha256.Size]byte // of each pair's cert and key contents, to tell a change
	byName map[string]*tls.Certificate
}

// StaticCerts serves cert alone, whatever the client asks (the self-signed certificate).
func StaticCerts(cert tls.Certificate) *Certs {
	c := &Certs{log: slog.New(slog.DiscardHandler)}
	c.cur.Store(newCertSet([]*tls.Certificate{&cert}, nil))
	return c
}

// LoadCerts loads pairs (the first is the default, served when no name matches the client's
// SNI, or when it sends none). Every pair must load: a server does not start with a broken one.
func LoadCerts(pairs []Pair, log *slog.Logger) (*Certs, error) {
	if len(pairs) == 0 {
		return nil, errors.New("no certificate files")
	}
	c := &Certs{pairs: pairs, log: log}
	set, _, err := c.load(nil)
	if err != nil {
		return nil, err
	}
	c.cur.Store(set)
	return c, nil
}

// GetCertificate picks the certificate for a handshake: the one whose names match the SNI
// exactly, else by wildcard (one label), else the default.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := c.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if crt, ok := set.byName[name]; ok {
		return crt, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if crt, ok := set.byName["*."+rest]; ok {
			return crt, nil
		}
	}
	return set.certs[0], nil
}

// Reload reads the files again and serves what changed. A pair that does not load (a renewal
// half written: the new certificate beside the old key) keeps its previous certificate, and
// the error says which; the next Reload (or Watch's next look) picks it up once both are in.
// It reports whether anything changed.
func (c *Certs) Reload() (changed bool, err error) {
	if c.pairs == nil {
		return false, nil // a fixed certificate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set, changed, err := c.load(c.cur.Load())
	if changed {
		c.cur.Store(set)
		c.log.Info("TLS certificates reloaded", "certificates", len(set.certs))
	}
	return changed, err
}

// Watch reloads every interval until ctx is done, so that certificates that certbot or lego
// renew in place are served without a signal. Errors are logged, and retried at each look.
func (c *Certs) Watch(ctx context.Context, interval time.Duration) {
	if c.pairs == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := c.Reload()
		// Log a failure once, not at every look while a renewal is half done.
		if msg := fmt.Sprint(err); err != nil && msg != lastErr {
			c.log.Warn("TLS certificate not reloaded: still serving the previous one", "err", err)
			lastErr = msg
		} else if err == nil {
			lastErr = ""
		}
	}
}

// load reads every pair. With old, a pair whose files are unchanged or do not load keeps old's
// certificate; changed says whether any pair was replaced.
func (c *Certs) load(old *certSet) (*certSet, bool, error) {
	certs := make([]*tls.Certificate, len(c.pairs))
	sums := make([][sha256.Size]byte, len(c.pairs))
	var errs []error
	changed := false
	for i, p := range c.pairs {
		crt, sum, err := loadPair(p)
		switch {
		case err != nil && old == nil:
			return nil, false, err
		case err != nil:
			errs = append(errs, err)
			certs[i], sums[i] = old.certs[i], old.sums[i]
		case old != nil && sum == old.sums[i]:
			certs[i], sums[i] = old.certs[i], sum
		default:
			certs[i], sums[i] = crt, sum
			changed = true
		}
	}
	return newCertSet(certs, sums), changed, errors.Join(errs...)
}

// loadPair reads and parses one pair; sum identifies the contents of both files.
func loadPair(p Pair) (*tls.Certificate, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	certPEM, err := os.ReadFile(p.Cert)
	if err != nil {
		return nil, sum, err
	}
	keyPEM, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, sum, err
	}
	sum = sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM}, []byte{0}))
	crt, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, sum, fmt.Errorf("loading %s and %s: %w", p.Cert, p.Key, err)
	}
	return &crt, sum, nil
}

func newCertSet(certs []*tls.Certificate, sums [][sha256.Size]byte) *certSet {
	s := &certSet{certs: certs, sums: sums, byName: make(map[string]*tls.Certificate)}
	for _, crt := range certs {
		for _, name := range certNames(crt) {
			name = strings.ToLower(name)
			if _, dup := s.byName[name]; !dup {
				s.byName[name] = crt
			}
		}
	}
	return s
}

// certNames returns the DNS names a certificate is for (its SANs; the CN when it has none).
func certNames(crt *tls.Certificate) []string {
	leaf := crt.Leaf
	if leaf == nil && len(crt.Certificate) > 0 {
		var err error
		if leaf, err = x509.ParseCertificate(crt.Certificate[0]); err != nil {
			return nil
		}
	}
	if leaf == nil {
		return nil
	}
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	if leaf.Subject.CommonName != "" {
		return []string{leaf.Subject.CommonName}
	}
	return nil
}

// ServerConfigCerts is ServerConfig with the certificate chosen at each handshake by certs.
func ServerConfigCerts(certs *Certs) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
	}
}
