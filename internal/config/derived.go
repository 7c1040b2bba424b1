package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Derived holds the values the server uses as they are, computed from the settings: where a
// setting's zero means "never" or "none" it becomes the negative the packages take, and what
// one setting implies for another is decided here once (and again on a reload), not by
// whoever builds the server.
type Derived struct {
	// RetrySchedule is queue.retry_schedule as durations; nil: exponential backoff.
	RetrySchedule []time.Duration
	// ShortestRetry is the shortest wait between two attempts of a message: the shortest
	// entry of the schedule, or min_backoff.
	ShortestRetry time.Duration
	// DeadHostTTL is the longest that remote delivery may skip an address found down: half
	// the shortest retry (at least a millisecond), so that a message's own retry always
	// tries it again. Remote delivery's own default caps it further.
	DeadHostTTL time.Duration
	// DelayWarning is queue.delay_warning; negative: never (the setting's 0).
	DelayWarning time.Duration
	// RecipientOvershoot is limits.recipient_overshoot; negative: none (the setting's 0).
	RecipientOvershoot int
	// ReservedConnections is the part of limits.connections kept for clients with few
	// connections (connections_reserved_percent of it).
	ReservedConnections int
	// RelayImplicitTLS is whether the relayhost gets TLS from the first octet: relay_tls
	// "implicit", or empty with the submissions port 465 (RFC 8314 §3.3).
	RelayImplicitTLS bool
}

// Derive computes the derived values of a validated config (see Validate).
func (c *Config) Derive() Derived {
	d := Derived{
		DelayWarning:        c.Queue.DelayWarning.Duration,
		RecipientOvershoot:  c.Limits.RecipientOvershoot,
		ReservedConnections: c.Limits.Connections * c.Limits.ConnectionsReservedPercent / 100,
		ShortestRetry:       c.Queue.MinBackoff.Duration,
	}
	for i, r := range c.Queue.RetrySchedule {
		d.RetrySchedule = append(d.RetrySchedule, r.Duration)
		if i == 0 || r.Duration < d.ShortestRetry {
			d.ShortestRetry = r.Duration
		}
	}
	d.DeadHostTTL = max(d.ShortestRetry/2, time.Millisecond)
	if d.DelayWarning <= 0 {
		d.DelayWarning = -1
	}
	if d.RecipientOvershoot == 0 {
		d.RecipientOvershoot = -1
	}
	if _, port, err := net.SplitHostPort(c.Delivery.Relayhost); err == nil {
		tls := c.Delivery.RelayTLS
		d.RelayImplicitTLS = tls == "implicit" || tls == "" && port == "465"
	}
	return d
}

// ParseLMTPAddr splits an LMTP server address (delivery.lmtp) into the network and address to
// dial: "unix:/path" is a unix socket, anything else "HOST:PORT" over TCP.
func ParseLMTPAddr(addr string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("LMTP address %q: the socket path after unix: is empty", addr)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("LMTP address %q is neither HOST:PORT nor unix:/path", addr)
	}
	return "tcp", addr, nil
}
