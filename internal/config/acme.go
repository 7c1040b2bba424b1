package config

import (
	"fmt"
	"net/url"
)

// ACME challenge types (RFC 8555 §8.3, RFC 8737).
const (
	ChallengeTLSALPN = "tls-alpn-01"
	ChallengeHTTP    = "http-01"
)

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// ACME configures certificates obtained and renewed by tern itself (RFC 8555).
type ACME struct {
	Enabled      bool     `toml:"enabled" doc:"Obtain the certificates of domains from an ACME CA (Let's Encrypt by default) and renew them when two thirds of their life has passed (30 days before expiry for Let's Encrypt's 90-day certificates). The account key and the certificates are kept in <data>/acme (0600). Until a certificate is issued, the [tls] certificate (or the self-signed one) is served."`
	Email        string   `toml:"email" doc:"Contact address given to the CA (expiry warnings). Empty: none."`
	DirectoryURL string   `toml:"directory_url" doc:"The CA's ACME directory (https)."`
	Domains      []string `toml:"domains" doc:"Names to get certificates for; the first is served to clients that send no name (SNI) or one not listed, unless [tls] has certificates for it. Empty: the hostname. Each must resolve to this host."`
	Challenge    string   `toml:"challenge" doc:"How the CA checks that we hold the names: \"tls-alpn-01\" (answered on the TLS listeners; the CA connects to port 443, so 443 must reach the submissions listener) or \"http-01\" (answered on http_listen; the CA connects to port 80)."`
	HTTPListen   string   `toml:"http_listen" doc:"Address of the small HTTP listener answering http-01 challenges (port 80 reaches it), e.g. \"0.0.0.0:80\". Needed for http-01 only; it answers nothing else."`
}

func defaultACME() ACME {
	return ACME{DirectoryURL: LetsEncrypt, Domains: []string{}, Challenge: ChallengeTLSALPN}
}

func (a ACME) validate() []error {
	if !a.Enabled {
		return nil
	}
	var errs []error
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("acme.directory_url %q: want an https URL", a.DirectoryURL))
	}
	switch a.Challenge {
	case ChallengeTLSALPN:
	case ChallengeHTTP:
		if a.HTTPListen == "" {
			errs = append(errs, fmt.Errorf("acme.challenge %q needs acme.http_listen", a.Challenge))
		} else if err := checkListen(a.HTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("acme.http_listen %q: %w", a.HTTPListen, err))
		}
	default:
		errs = append(errs, fmt.Errorf("acme.challenge %q: want %q or %q", a.Challenge, ChallengeTLSALPN, ChallengeHTTP))
	}
	for _, d := range a.Domains {
		if _, err := parseDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("acme.domains %q: %w", d, err))
		}
	}
	return errs
}

// Names returns the domains to get certificates for, in the form tern compares (lower case,
// no trailing dot): domains, or the hostname.
func (a ACME) Names(hostname string) []string {
	names := a.Domains
	if len(names) == 0 {
		names = []string{hostname}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if d, err := parseDomain(n); err == nil {
			out = append(out, d)
		}
	}
	return out
}
