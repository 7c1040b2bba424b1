package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/tlsutil"
)

func acmePath(data string) string { return filepath.Join(data, "acme") }

// ACME retry bounds: a CA that refuses (rate limits, DNS not yet pointing here) is asked again
// later, never at every handshake.
const (
	acmeRetryMin = time.Minute
	acmeRetryMax = 6 * time.Hour
)

// acmeCerts serves the certificates an ACME CA issues (autocert keeps them in <data>/acme and
// renews them when two thirds of their life has passed: 30 days before expiry for 90-day
// certificates), and the files' certificates (or the self-signed one) for
// other names and until the first issuance.
type acmeCerts struct {
	m         *autocert.Manager
	names     []string // the first is the default
	challenge string
	files     *tlsutil.Certs
	haveFiles bool // [tls] names certificates: they serve names not in names
	httpLn    net.Listener
	log       *slog.Logger

	mu    sync.Mutex
	ready map[string]bool // issued (or found in the cache): the manager answers at once
}

// newACME makes the manager for cfg.ACME and binds the http-01 listener if it is configured.
func newACME(cfg config.Config, data string, files *tlsutil.Certs, log *slog.Logger) (*acmeCerts, error) {
	a := &acmeCerts{
		names:     cfg.ACME.Names(cfg.Hostname),
		challenge: cfg.ACME.Challenge,
		files:     files,
		haveFiles: len(cfg.TLS.Pairs()) > 0,
		log:       log.With("acme", cfg.ACME.DirectoryURL),
		ready:     map[string]bool{},
	}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      acmeCache{autocert.DirCache(acmePath(data)), a}, // 0700 directory, 0600 files
		HostPolicy: a.hostPolicy,
		Email:      cfg.ACME.Email,
		Client:     &acme.Client{DirectoryURL: cfg.ACME.DirectoryURL, UserAgent: "tern"},
	}
	if a.challenge == config.ChallengeHTTP {
		ln, err := net.Listen("tcp", cfg.ACME.HTTPListen)
		if err != nil {
			return nil, listenError("acme http-01", cfg.ACME.HTTPListen, err)
		}
		a.httpLn = ln
	}
	return a, nil
}

// hostPolicy lets the manager ask for our names only. The http-01 handler passes the Host
// header, which carries a port when the CA validates on another port than 80 (tests).
func (a *acmeCerts) hostPolicy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !slices.Contains(a.names, strings.ToLower(strings.TrimSuffix(host, "."))) {
		return fmt.Errorf("acme: %q is not in acme.domains", host)
	}
	return nil
}

// serverTLS is the TLS configuration of every listener with ACME on: the acme-tls/1 protocol
// (RFC 8737) is offered for tls-alpn-01, ordinary clients never ask for it.
func (a *acmeCerts) serverTLS() *tls.Config {
	c := tlsutil.ServerConfigCerts(a.files)
	c.GetCertificate = a.getCertificate
	if a.challenge == config.ChallengeTLSALPN {
		c.NextProtos = []string{acme.ALPNProto}
	}
	return c
}

func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		if a.challenge != config.ChallengeTLSALPN {
			return nil, errors.New("tls-alpn-01 is not the configured ACME challenge")
		}
		return a.m.GetCertificate(hello)
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if !slices.Contains(a.names, name) {
		if a.haveFiles {
			return a.files.GetCertificate(hello)
		}
		name = a.names[0]
	}
	a.mu.Lock()
	ready := a.ready[name]
	a.mu.Unlock()
	if !ready {
		return a.files.GetCertificate(hello) // until issued: never a handshake waiting on the CA
	}
	h := *hello
	h.ServerName = name
	crt, err := a.m.GetCertificate(&h)
	if err != nil {
		a.log.Warn("ACME certificate unavailable: serving the configured one", "name", name, "err", err)
		return a.files.GetCertificate(hello)
	}
	return crt, nil
}

// run obtains the certificates (from the cache or the CA) and serves http-01 until ctx is
// done. Renewal is autocert's: a timer per certificate, after two thirds of its life; new
// handshakes get the renewed certificate, sessions already open keep theirs.
func (a *acmeCerts) run(ctx context.Context) {
	// The obtaining goroutines are not waited for: one may be in a CA exchange (up to autocert's
	// 5 minutes), and nothing of it needs finishing before the process ends.
	for _, name := range a.names {
		go a.obtain(ctx, name)
	}
	if a.httpLn == nil {
		<-ctx.Done()
		return
	}
	srv := &http.Server{Handler: a.m.HTTPHandler(http.NotFoundHandler()), ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		_ = srv.Close() // best effort: it only answers challenges
	}()
	// Closed either way at shutdown: by srv.Close or by Close releasing the listener.
	if err := srv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		a.log.Error("acme http-01 listener", "err", err)
	}
	<-stopped
}

// acmeCache is autocert's cache, which logs the renewals it stores: autocert renews on its own
// timer (after two thirds of a certificate's life), and the administrator should see it.
type acmeCache struct {
	autocert.DirCache
	a *acmeCerts
}

// Put stores data under key; a certificate of ours stored after the first is a renewal.
func (c acmeCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.DirCache.Put(ctx, key, data); err != nil {
		return err
	}
	name := strings.TrimSuffix(key, "+rsa") // autocert's key for an RSA certificate
	c.a.mu.Lock()
	renewal := c.a.ready[name]
	c.a.mu.Unlock()
	if renewal {
		c.a.log.Info("ACME certificate renewed", "name", name, "expires", pemExpiry(data))
	}
	return nil
}

// pemExpiry is the expiry of the first certificate in the PEM data (autocert stores the key,
// then the chain), or the zero time.
func pemExpiry(data []byte) time.Time {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return time.Time{}
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return time.Time{}
			}
			return c.NotAfter
		}
	}
}

// obtain gets name's certificate, retrying with backoff while the CA refuses.
func (a *acmeCerts) obtain(ctx context.Context, name string) {
	wait := acmeRetryMin
	for {
		// An ECDSA P-256 certificate: what every TLS 1.2+ client takes.
		hello := &tls.ClientHelloInfo{
			ServerName:       name,
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		}
		crt, err := a.m.GetCertificate(hello)
		if err == nil {
			a.mu.Lock()
			a.ready[name] = true
			a.mu.Unlock()
			var expires time.Time
			if crt.Leaf != nil {
				expires = crt.Leaf.NotAfter
			}
			a.log.Info("ACME certificate ready", "name", name, "expires", expires)
			return
		}
		a.log.Warn("ACME certificate not obtained: serving the configured one meanwhile", "name", name, "err", err, "retry", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, acmeRetryMax)
	}
}
