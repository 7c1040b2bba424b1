package remote

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
)

// TestTLSPolicy covers the operator's modes and DANE. Certificates from h.ca are trusted
// (Options.RootCAs); those of a second CA are not.
func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	// secureMX publishes dest.test's MX and mx1's address with the AD bit.
	secureMX := func(h *harness) {
		h.mx("dest.test", 10, mx, "127.0.0.2")
		h.dns.SetSecure("dest.test", mx)
	}
	type env struct {
		h     *harness
		other *testCA // an untrusted CA
	}
	tests := []struct {
		name   string
		policy TLSMode
		setup  func(e env) *peer
		want   string
		tls    bool // the transaction went over TLS
		conns  int  // connections to the peer, if not 0
	}{{
		name: "may: untrusted certificate is fine",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))})
		},
		want: "ok", tls: true,
	}, {
		name: "may: no STARTTLS, plaintext",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx})
		},
		want: "ok",
	}, {
		name: "may: failed handshake is retried without TLS",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, badTLS: true})
		},
		want: "ok", conns: 2,
	}, {
		name: "may: STARTTLS refused, plaintext on the same connection",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx)), tlsRefuse: "454 4.7.0 TLS not available"})
		},
		want: "ok", conns: 1,
	}, {
		name:   "verify: STARTTLS refused",
		policy: TLSVerify,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx)), tlsRefuse: "454 4.7.0 TLS not available"})
		},
		want: "temp 454 4.7.4",
	}, {
		name:   "encrypt: no STARTTLS",
		policy: TLSEncrypt,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx})
		},
		want: "temp 454 4.7.4",
	}, {
		name:   "encrypt: untrusted certificate is fine",
		policy: TLSEncrypt,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))})
		},
		want: "ok", tls: true,
	}, {
		name:   "encrypt: failed handshake is not retried in plaintext",
		policy: TLSEncrypt,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, badTLS: true})
		},
		want: "temp 454 4.7.5", conns: 1,
	}, {
		name:   "verify: trusted certificate for the MX name",
		policy: TLSVerify,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))})
		},
		want: "ok", tls: true,
	}, {
		name:   "verify: untrusted certificate",
		policy: TLSVerify,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))})
		},
		want: "temp 454 4.7.5",
	}, {
		name:   "verify: certificate for another name",
		policy: TLSVerify,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "other.test"))})
		},
		want: "temp 454 4.7.5",
	}, {
		name: "DANE-EE 3 1 1 matches an untrusted certificate",
		setup: func(e env) *peer {
			secureMX(e.h)
			cert := e.other.issue(e.h.t, "whatever.test")
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, cert.Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(cert)})
		},
		want: "ok", tls: true,
	}, {
		name: "DANE-EE 3 0 1 (whole certificate)",
		setup: func(e env) *peer {
			secureMX(e.h)
			cert := e.other.issue(e.h.t, mx)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 0, 1, cert.Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(cert)})
		},
		want: "ok", tls: true,
	}, {
		name: "DANE-EE mismatch",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))})
		},
		want: "temp 454 4.7.5",
	}, {
		name: "DANE-TA 2 0 1 of an untrusted CA, name checked",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 2, 0, 1, e.other.cert))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))})
		},
		want: "ok", tls: true,
	}, {
		name: "DANE-TA accepts the next-hop domain's name",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 2, 1, 2, e.other.cert))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, "dest.test"))})
		},
		want: "ok", tls: true,
	}, {
		name: "DANE-TA with a wrong name",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 2, 0, 1, e.other.cert))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, "elsewhere.test"))})
		},
		want: "temp 454 4.7.5",
	}, {
		name: "DANE without STARTTLS",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx})
		},
		want: "temp 454 4.7.4",
	}, {
		name: "DANE: failed handshake is not retried in plaintext",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx, badTLS: true})
		},
		want: "temp 454 4.7.5", conns: 1,
	}, {
		name: "TLSA without the AD bit: no DANE",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "mismatch.test"))})
		},
		want: "ok", tls: true,
	}, {
		name: "MX without the AD bit: no DANE",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			e.h.dns.SetSecure(mx, "_"+itoa(e.h.port)+"._tcp."+mx)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "mismatch.test"))})
		},
		want: "ok", tls: true,
	}, {
		name: "address without the AD bit: no DANE",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			e.h.dns.SetSecure("dest.test", "_"+itoa(e.h.port)+"._tcp."+mx)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "mismatch.test"))})
		},
		want: "ok", tls: true,
	}, {
		name: "TLSA lookup fails: host not used",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Fail("_"+itoa(e.h.port)+"._tcp."+mx, 2)
			return e.h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))})
		},
		want: "temp 451 4.4.3", conns: -1,
	}, {
		name: "only unusable TLSA records (PKIX-EE): TLS required without authentication",
		setup: func(e env) *peer {
			secureMX(e.h)
			e.h.dns.Add(e.h.t, tlsaRR(e.h.t, "_"+itoa(e.h.port)+"._tcp."+mx+".", 1, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			e.h.dns.SetSecure("_" + itoa(e.h.port) + "._tcp." + mx)
			return e.h.peer("127.0.0.2", &peer{name: mx})
		},
		want: "temp 454 4.7.4",
	}, {
		name: "secure MX, no TLSA records: opportunistic",
		setup: func(e env) *peer {
			secureMX(e.h)
			return e.h.peer("127.0.0.2", &peer{name: mx})
		},
		want: "ok",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := tc.setup(env{h: h, other: newCA(t)})
			d := h.deliverer(func(o *Options) {
				if tc.policy != "" {
					o.TLSPolicy = map[string]TLSMode{"dest.test": tc.policy}
				}
			})
			out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
			checkOutcome(t, 0, out[0], tc.want)
			switch {
			case tc.conns < 0 && p.connections() != 0:
				t.Errorf("%d connections, want none", p.connections())
			case tc.conns > 0 && p.connections() != tc.conns:
				t.Errorf("%d connections, want %d", p.connections(), tc.conns)
			}
			if out[0].Err == nil {
				if tx := wantTxns(t, p, 1); tx[0].tls != tc.tls {
					t.Errorf("TLS %v, want %v", tx[0].tls, tc.tls)
				}
			}
		})
	}
}

func TestPolicyFor(t *testing.T) {
	t.Parallel()
	d, err := New(Options{Hostname: "h.test", Resolver: "127.0.0.1:53", TLSPolicy: map[string]TLSMode{
		"Example.COM.": TLSVerify, ".example.com": TLSEncrypt, ".org": TLSEncrypt,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for dom, want := range map[string]TLSMode{
		"example.com": TLSVerify, "mx.example.com": TLSEncrypt, "a.b.example.com": TLSEncrypt,
		"example.org": TLSEncrypt, "example.net": "",
	} {
		if got, _ := d.policyFor(dom); got != want {
			t.Errorf("policyFor(%q) = %q, want %q", dom, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
	}{
		{"no host name", Options{}},
		{"bad port", Options{Hostname: "h", Port: 70000}},
		{"bad relayhost", Options{Hostname: "h", Relayhost: "relay.test"}},
		{"bad relayhost port", Options{Hostname: "h", Relayhost: "relay.test:smtp"}},
		{"credentials without relayhost", Options{Hostname: "h", RelayAuth: &RelayAuth{User: "u"}}},
		{"unknown mechanism", Options{Hostname: "h", Relayhost: "r:25", RelayAuth: &RelayAuth{Mechanism: "CRAM-MD5"}}},
		{"unknown TLS mode", Options{Hostname: "h", TLSPolicy: map[string]TLSMode{"x": "must"}}},
		{"bad resolver", Options{Hostname: "h", Resolver: "127.0.0.1"}},
	}
	for _, tc := range tests {
		if _, err := New(tc.opts); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

var _ delivery.BatchDeliverer = (*Deliverer)(nil)

// TestLostConnection: a handshake that failed with the connection is not a TLS failure (a
// REQUIRETLS message would bounce on one); an alert or a failed verification is.
func TestLostConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"early close", fmt.Errorf("smtpclient: STARTTLS: %w", io.EOF), true},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{"server's alert", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, false},
		{"certificate not verified", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, false},
		{"no TLSA match", errNoTLSAMatch, false},
	} {
		if got := lostConnection(tc.err); got != tc.want {
			t.Errorf("%s: lostConnection(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
