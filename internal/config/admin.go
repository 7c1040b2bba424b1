package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Admin configures the admin web interface (package webadmin).
type Admin struct {
	Listen         string   `toml:"listen" doc:"HOST:PORT of the admin web interface (--admin): queue, accounts, domains, live sessions. Empty: none. A loopback address (reach it through an SSH tunnel) unless tls is on; its logins are made with tern admin add."`
	TLS            bool     `toml:"tls" doc:"Serve the admin web interface over HTTPS, with the server's certificate ([tls], [acme]); needed for a listen address that is not loopback. Its session cookie is then Secure."`
	SessionTimeout Duration `toml:"session_timeout" doc:"How long an admin stays logged in after logging in; then the login page again."`
}

// DefaultAdminSession is how long an admin session lasts by default: a working day.
const DefaultAdminSession = 8 * time.Hour

// errAdminPublic explains why a public admin address without TLS is refused.
var errAdminPublic = errors.New("not a loopback address: the admin pages would travel in clear text; set admin.tls = true to serve them over HTTPS, or reach a loopback address through an SSH tunnel")

// validate checks the admin address: HOST:PORT, loopback unless TLS.
func (a Admin) validate() []error {
	if a.Listen == "" {
		return nil
	}
	var errs []error
	if a.SessionTimeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("admin.session_timeout %v: want a positive duration", a.SessionTimeout.Duration))
	}
	host, _, err := net.SplitHostPort(a.Listen)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("admin.listen (--admin) %q: want HOST:PORT", a.Listen))
	case !a.TLS && !loopbackHost(host):
		errs = append(errs, fmt.Errorf("admin.listen (--admin) %q: %w", a.Listen, errAdminPublic))
	}
	return errs
}

// loopbackHost reports whether host (of HOST:PORT) is a loopback address or "localhost"; an
// empty host (every address) is not.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
