package config

import (
	"errors"
	"fmt"
	"net"
)

// Metrics configures the Prometheus endpoint (/metrics, /healthz, /readyz).
type Metrics struct {
	Listen      string `toml:"listen" doc:"HOST:PORT of the HTTP endpoint serving /metrics (Prometheus), /healthz and /readyz (--metrics). Empty: none. A loopback address unless allow_public is set."`
	AllowPublic bool   `toml:"allow_public" doc:"Allow a listen address that is not loopback (0.0.0.0, a public address): the metrics tell whoever reaches them how busy the server is; put a firewall in front."`
}

// errMetricsPublic explains why a public metrics address is refused.
var errMetricsPublic = errors.New("not a loopback address: the metrics tell whoever can reach them how busy the server is; set metrics.allow_public = true to serve them there")

// validate checks the metrics address: HOST:PORT, loopback unless AllowPublic.
func (m Metrics) validate() []error {
	if m.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return []error{fmt.Errorf("metrics.listen (--metrics) %q: want HOST:PORT", m.Listen)}
	}
	if !m.AllowPublic && !loopbackHost(host) {
		return []error{fmt.Errorf("metrics.listen (--metrics) %q: %w", m.Listen, errMetricsPublic)}
	}
	return nil
}
