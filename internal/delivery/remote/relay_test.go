package remote

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

func TestRelayhost(t *testing.T) {
	t.Parallel()
	const user, pass = "tern", "s3cret pass"
	tests := []struct {
		name   string
		byName bool // Relayhost "relay.test:PORT" (else the address)
		tls    bool // the relay offers STARTTLS with a trusted certificate
		wrap   bool // ... or TLS from the first octet (port 465), with RelayImplicitTLS
		mechs  []string
		auth   *RelayAuth
		policy TLSMode
		rcpt   func(string) string
		want   []string
		mech   string // the mechanism used, if any
	}{
		{name: "no AUTH, both domains in one transaction", want: []string{"ok", "ok"}},
		{name: "by name", byName: true, want: []string{"ok", "ok"}},
		{name: "implicit TLS (port 465), then PLAIN", byName: true, tls: true, wrap: true, mechs: []string{"PLAIN"}, auth: &RelayAuth{User: user, Password: pass},
			policy: TLSVerify, want: []string{"ok", "ok"}, mech: "PLAIN"},
		{name: "PLAIN over TLS", tls: true, mechs: []string{"PLAIN", "LOGIN"}, auth: &RelayAuth{User: user, Password: pass}, want: []string{"ok", "ok"}, mech: "PLAIN"},
		{name: "LOGIN when asked", tls: true, mechs: []string{"PLAIN", "LOGIN"}, auth: &RelayAuth{Mechanism: "login", User: user, Password: pass}, want: []string{"ok", "ok"}, mech: "LOGIN"},
		{name: "SCRAM preferred", tls: true, mechs: []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"}, auth: &RelayAuth{User: user, Password: pass}, want: []string{"ok", "ok"}, mech: "SCRAM-SHA-256"},
		{name: "SCRAM with channel binding", tls: true, mechs: []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}, auth: &RelayAuth{User: user, Password: pass}, want: []string{"ok", "ok"}, mech: "SCRAM-SHA-256-PLUS"},
		{name: "SCRAM without TLS", mechs: []string{"PLAIN", "SCRAM-SHA-256"}, auth: &RelayAuth{User: user, Password: pass}, want: []string{"ok", "ok"}, mech: "SCRAM-SHA-256"},
		{name: "PLAIN never without TLS", mechs: []string{"PLAIN", "LOGIN"}, auth: &RelayAuth{User: user, Password: pass}, want: []string{"temp 451 4.7.0", "temp 451 4.7.0"}},
		{name: "PLAIN never without TLS, even when asked", mechs: []string{"PLAIN"}, auth: &RelayAuth{Mechanism: "PLAIN", User: user, Password: pass}, want: []string{"temp 451 4.7.0", "temp 451 4.7.0"}},
		{name: "wrong password is temporary", tls: true, mechs: []string{"PLAIN"}, auth: &RelayAuth{User: user, Password: "wrong"}, want: []string{"temp 451 4.7.8", "temp 451 4.7.8"}},
		{name: "verify policy for the relay by name", byName: true, tls: true, policy: TLSVerify, want: []string{"ok", "ok"}},
		{name: "relay refuses one recipient", rcpt: func(a string) string {
			if strings.HasSuffix(a, "@other.test") {
				return "550 5.7.1 relay denied"
			}
			return ""
		}, want: []string{"ok", "perm 550 5.7.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := &peer{name: "relay.test", authMechs: tc.mechs, creds: newCreds(t, user, pass), rcpt: tc.rcpt}
			if tc.tls {
				p.tls = tlsConfig(h.ca.issue(t, "relay.test"))
				p.implicit = tc.wrap
			}
			h.peer("127.0.0.2", p)
			relay := "127.0.0.2:" + itoa(h.port)
			if tc.byName {
				h.dns.Add(t, "relay.test. A 127.0.0.2")
				relay = "relay.test:" + itoa(h.port)
			}
			d := h.deliverer(func(o *Options) {
				o.Relayhost, o.RelayAuth, o.RelayImplicitTLS = relay, tc.auth, tc.wrap
				if tc.policy != "" {
					o.TLSPolicy = map[string]TLSMode{"relay.test": tc.policy}
				}
			})
			out := deliverAll(d, newEnv("bob@dest.test", "dave@other.test"), testMessage)
			for i, w := range tc.want {
				checkOutcome(t, i, out[i], w)
			}
			// The debug log traces the whole dialogue, AUTH included: never the password,
			// in clear or in base64 (PLAIN's "\0user\0pass", LOGIN's lone password).
			logs := h.logs.String()
			if tc.mech != "" && !strings.Contains(logs, `line="AUTH `+tc.mech) {
				t.Errorf("no AUTH %s in the debug trace: the check below proves nothing", tc.mech)
			}
			for _, secret := range []string{pass, base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass)),
				base64.StdEncoding.EncodeToString([]byte(pass))} {
				if strings.Contains(logs, secret) {
					t.Errorf("the log has the password (%q)", secret)
				}
			}
			if h.dns.Count("dest.test", dns.TypeMX) != 0 {
				t.Errorf("MX looked up despite the relayhost")
			}
			if out[0].Err != nil {
				wantTxns(t, p, 0)
				return
			}
			tx := wantTxns(t, p, 1)[0]
			if tx.mech != tc.mech || (tc.mech != "" && tx.auth != user) {
				t.Errorf("AUTH %q as %q, want %q", tx.mech, tx.auth, tc.mech)
			}
			if tx.tls != tc.tls {
				t.Errorf("TLS %v, want %v", tx.tls, tc.tls)
			}
		})
	}
}

func TestRequireTLS(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	tests := []struct {
		name   string
		setup  func(h *harness, other *testCA) *peer
		relay  bool
		want   string
		noConn bool
	}{{
		name: "DNSSEC MX, verified certificate, REQUIRETLS offered",
		setup: func(h *harness, _ *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}, tls: tlsConfig(h.ca.issue(h.t, mx))})
		},
		want: "ok",
	}, {
		name: "REQUIRETLS not offered",
		setup: func(h *harness, _ *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(h.ca.issue(h.t, mx))})
		},
		want: "perm 550 5.7.30",
	}, {
		name: "MX without DNSSEC and no MTA-STS",
		setup: func(h *harness, _ *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}, tls: tlsConfig(h.ca.issue(h.t, mx))})
		},
		want: "perm 550 5.7.30", noConn: true,
	}, {
		name: "unverifiable certificate: no route for REQUIRETLS, at once (RFC 8689 §4.2.1)",
		setup: func(h *harness, other *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}, tls: tlsConfig(other.issue(h.t, mx))})
		},
		want: "perm 550 5.7.30",
	}, {
		name: "no STARTTLS at a DNSSEC MX",
		setup: func(h *harness, _ *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}})
		},
		want: "perm 550 5.7.30",
	}, {
		name: "one host's certificate fails, the other is down: temporary, as REQUIRETLS",
		setup: func(h *harness, other *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}, tls: tlsConfig(other.issue(h.t, mx))})
		},
		want: "temp 451 4.7.30",
	}, {
		name: "DANE verifies",
		setup: func(h *harness, other *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.SetSecure("dest.test", mx, "_"+itoa(h.port)+"._tcp."+mx)
			cert := other.issue(h.t, mx)
			h.dns.Add(h.t, tlsaRR(h.t, "_"+itoa(h.port)+"._tcp."+mx+".", 3, 1, 1, cert.Leaf))
			return h.peer("127.0.0.2", &peer{name: mx, ext: []string{"REQUIRETLS"}, tls: tlsConfig(cert)})
		},
		want: "ok",
	}, {
		name: "one host lacks REQUIRETLS, the other is down: temporary, as REQUIRETLS",
		setup: func(h *harness, _ *testCA) *peer {
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.mx("dest.test", 20, "mx2.dest.test", "127.0.0.3")
			h.dns.SetSecure("dest.test")
			return h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(h.ca.issue(h.t, mx))})
		},
		want: "temp 451 4.7.30",
	}, {
		name:  "relayhost with verified TLS",
		relay: true,
		setup: func(h *harness, _ *testCA) *peer {
			h.dns.Add(h.t, "relay.test. A 127.0.0.2")
			return h.peer("127.0.0.2", &peer{name: "relay.test", ext: []string{"REQUIRETLS"}, tls: tlsConfig(h.ca.issue(h.t, "relay.test"))})
		},
		want: "ok",
	}, {
		name:  "relayhost without TLS: temporary, as REQUIRETLS (the admin's own next hop)",
		relay: true,
		setup: func(h *harness, _ *testCA) *peer {
			h.dns.Add(h.t, "relay.test. A 127.0.0.2")
			return h.peer("127.0.0.2", &peer{name: "relay.test", ext: []string{"REQUIRETLS"}})
		},
		want: "temp 451 4.7.30",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := tc.setup(h, newCA(t))
			d := h.deliverer(func(o *Options) {
				if tc.relay {
					o.Relayhost = "relay.test:" + itoa(h.port)
				}
			})
			env := newEnv("bob@dest.test")
			env.RequireTLS = true
			out := deliverAll(d, env, testMessage)
			checkOutcome(t, 0, out[0], tc.want)
			if tc.noConn && p.connections() != 0 {
				t.Errorf("connected %d times", p.connections())
			}
			if out[0].Err == nil {
				tx := wantTxns(t, p, 1)[0]
				if !strings.HasSuffix(tx.mail, " REQUIRETLS") || !tx.tls {
					t.Errorf("MAIL %q, TLS %v", tx.mail, tx.tls)
				}
			}
		})
	}
}

// TestOutcomeErrors checks the classified error of each failure carries what a bounce needs.
func TestOutcomeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	h.peer("127.0.0.2", &peer{name: "mx1.dest.test", ext: []string{"SIZE 10"}})
	d := h.deliverer(nil)
	out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
	de, ok := out[0].Err.(*delivery.Error)
	if !ok || !delivery.IsPermanent(out[0].Err) || de.RemoteMTA != "mx1.dest.test" || !strings.Contains(de.Msg, "exceeds the limit of 10") {
		t.Fatalf("outcome %+v", out[0])
	}
	if !strings.Contains(h.logs.String(), `msg="remote: connection"`) || !strings.Contains(h.logs.String(), `status=bounced`) {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// TestRequireTLSOption checks that Options.RequireTLS overrides the envelope's flag.
func TestRequireTLSOption(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	h.peer("127.0.0.2", okPeer("mx1.dest.test"))
	d := h.deliverer(func(o *Options) { o.RequireTLS = func(e *envelope.Envelope) bool { return e.ID == "Q1" } })
	checkOutcome(t, 0, deliverAll(d, newEnv("bob@dest.test"), testMessage)[0], "perm 550 5.7.30")
}
