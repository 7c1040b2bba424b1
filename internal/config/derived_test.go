package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDerive(t *testing.T) {
	sched := func(ds ...time.Duration) []Duration {
		var out []Duration
		for _, d := range ds {
			out = append(out, Duration{d})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   Derived
	}{
		{"defaults", func(*Config) {}, Derived{
			ShortestRetry: time.Minute, DeadHostTTL: 30 * time.Second, DelayWarning: 4 * time.Hour,
			RecipientOvershoot: 1000, ReservedConnections: 200}},
		{"schedule: its shortest entry", func(c *Config) { c.Queue.RetrySchedule = sched(4*time.Second, time.Second, 2*time.Second) }, Derived{
			RetrySchedule: []time.Duration{4 * time.Second, time.Second, 2 * time.Second},
			ShortestRetry: time.Second, DeadHostTTL: 500 * time.Millisecond, DelayWarning: 4 * time.Hour,
			RecipientOvershoot: 1000, ReservedConnections: 200}},
		{"dead hosts skipped at least 1ms", func(c *Config) { c.Queue.RetrySchedule = sched(time.Millisecond) }, Derived{
			RetrySchedule: []time.Duration{time.Millisecond},
			ShortestRetry: time.Millisecond, DeadHostTTL: time.Millisecond, DelayWarning: 4 * time.Hour,
			RecipientOvershoot: 1000, ReservedConnections: 200}},
		{"zero means never or none", func(c *Config) {
			c.Queue.DelayWarning.Duration, c.Limits.RecipientOvershoot, c.Limits.ConnectionsReservedPercent = 0, 0, 0
		}, Derived{ShortestRetry: time.Minute, DeadHostTTL: 30 * time.Second, DelayWarning: -1, RecipientOvershoot: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := c.Derive(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Derive() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRelayImplicitTLS: TLS from the first octet for relay_tls implicit, or by default on
// the submissions port (RFC 8314 §3.3); STARTTLS otherwise.
func TestRelayImplicitTLS(t *testing.T) {
	for _, tc := range []struct {
		relayhost, tls string
		want           bool
	}{
		{"smtp.example.net:465", "", true},
		{"smtp.example.net:587", "", false},
		{"smtp.example.net:587", "implicit", true},
		{"smtp.example.net:465", "starttls", false},
		{"", "", false},
	} {
		c := Default()
		c.Delivery.Relayhost, c.Delivery.RelayTLS = tc.relayhost, tc.tls
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.Derive().RelayImplicitTLS; got != tc.want {
			t.Errorf("relayhost %q, relay_tls %q: implicit TLS %v, want %v", tc.relayhost, tc.tls, got, tc.want)
		}
	}
}

func TestParseLMTPAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, network, address string
		ok                     bool
	}{
		{"127.0.0.1:24", "tcp", "127.0.0.1:24", true},
		{"[::1]:24", "tcp", "[::1]:24", true},
		{"localhost:lmtp", "tcp", "localhost:lmtp", true},
		{"unix:/run/dovecot/lmtp", "unix", "/run/dovecot/lmtp", true},
		{"unix:", "", "", false},
		{"dovecot", "", "", false},
		{":24", "", "", false},
		{"host:", "", "", false},
		{"", "", "", false},
	} {
		network, address, err := ParseLMTPAddr(tc.addr)
		if (err == nil) != tc.ok || network != tc.network || address != tc.address {
			t.Errorf("ParseLMTPAddr(%q) = %q, %q, %v", tc.addr, network, address, err)
		}
	}
}

func FuzzParseLMTPAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:24", "[::1]:24", "unix:/run/dovecot/lmtp", "unix:", "dovecot", ":24"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		network, address, err := ParseLMTPAddr(addr)
		switch {
		case err != nil:
			if network != "" || address != "" {
				t.Errorf("ParseLMTPAddr(%q) = %q, %q with error %v", addr, network, address, err)
			}
		case network == "unix":
			if "unix:"+address != addr || address == "" {
				t.Errorf("ParseLMTPAddr(%q) = unix %q", addr, address)
			}
		case network != "tcp" || address != addr:
			t.Errorf("ParseLMTPAddr(%q) = %q, %q", addr, network, address)
		}
	})
}
