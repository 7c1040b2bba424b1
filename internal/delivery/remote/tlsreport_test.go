package remote

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/smtpclient"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// recorder is a TLSRecorder that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	got []tlsrpt.Outcome
}

func (r *recorder) RecordTLS(o tlsrpt.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, o)
}

func (r *recorder) outcomes() []tlsrpt.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tlsrpt.Outcome(nil), r.got...)
}

func TestClassifyTLSError(t *testing.T) {
	t.Parallel()
	expired := x509.CertificateInvalidError{Reason: x509.Expired}
	for _, tc := range []struct {
		name string
		err  error
		want tlsrpt.ResultType
	}{
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx.test"}, tlsrpt.CertificateHostMismatch},
		{"wrong name, from the handshake", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx.test"}}, tlsrpt.CertificateHostMismatch},
		{"expired", expired, tlsrpt.CertificateExpired},
		{"expired, wrapped", fmt.Errorf("smtpclient: STARTTLS: %w", &tls.CertificateVerificationError{Err: expired}), tlsrpt.CertificateExpired},
		{"not a CA", x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, tlsrpt.ValidationFailure},
		{"unknown authority", x509.UnknownAuthorityError{}, tlsrpt.CertificateNotTrusted},
		{"unknown authority, wrapped", fmt.Errorf("x: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), tlsrpt.CertificateNotTrusted},
		{"no TLSA match", errNoTLSAMatch, tlsrpt.TLSAInvalid},
		{"DANE-TA matched, then the name failed", fmt.Errorf("%w: %w", errNoTLSAMatch, x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx.test"}), tlsrpt.CertificateHostMismatch},
		{"no certificate", errNoPeerCert, tlsrpt.ValidationFailure},
		{"not TLS at all", errors.New("tls: first record does not look like a TLS handshake"), tlsrpt.ValidationFailure},
		{"no error kept", nil, tlsrpt.ValidationFailure},
	} {
		if got := classifyTLSError(tc.err); got != tc.want {
			t.Errorf("%s: classifyTLSError(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestClassifySTSFetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want tlsrpt.ResultType
	}{
		{"not found", errors.New("GET https://mta-sts.dest.test/.well-known/mta-sts.txt: 404 Not Found"), tlsrpt.STSPolicyFetchError},
		{"connection refused", errors.New("dial tcp 127.0.0.9:443: connect: connection refused"), tlsrpt.STSPolicyFetchError},
		{"bad syntax", fmt.Errorf("%w: mode %q", mtasts.ErrPolicy, "strict"), tlsrpt.STSPolicyInvalid},
		{"untrusted certificate", fmt.Errorf("Get: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), tlsrpt.STSWebPKIInvalid},
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mta-sts.dest.test"}, tlsrpt.STSWebPKIInvalid},
	} {
		if got := classifySTSFetch(tc.err); got != tc.want {
			t.Errorf("%s: classifySTSFetch(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestSessionResult: which sessions are recorded, and as what.
func TestSessionResult(t *testing.T) {
	t.Parallel()
	refused := &smtpclient.Error{Command: smtpclient.CmdSTARTTLS, Code: 454, Enhanced: "4.7.0", Text: "TLS not available"}
	untrusted := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	none, sts, tlsa := tlsrpt.PolicyNotFound, tlsrpt.PolicySTS, tlsrpt.PolicyTLSA
	for _, tc := range []struct {
		name string
		s    sessionTLS
		want string // "-" (not recorded), "ok", or the result type
	}{
		{"no policy, no STARTTLS: plain SMTP", sessionTLS{policy: none}, "-"},
		{"no policy, TLS with any certificate", sessionTLS{policy: none, offered: true, verifyErr: untrusted}, "ok"},
		{"no policy, STARTTLS refused", sessionTLS{policy: none, offered: true, err: refused}, "starttls-not-supported"},
		{"no policy, handshake failed", sessionTLS{policy: none, offered: true, err: errors.New("tls: first record does not look like a TLS handshake")}, "validation-failure"},
		{"no policy, the connection broke in the handshake", sessionTLS{policy: none, offered: true, err: io.ErrUnexpectedEOF}, "-"},
		{"plaintext retry", sessionTLS{policy: none, noTLS: true}, "-"},
		{"operator's encrypt, no STARTTLS", sessionTLS{policy: none, required: true}, "starttls-not-supported"},
		{"operator's verify, wrong name", sessionTLS{policy: none, required: true, offered: true, err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx.test"}}, "certificate-host-mismatch"},
		{"sts enforce, verified", sessionTLS{policy: sts, required: true, offered: true, verified: true}, "ok"},
		{"sts enforce, no STARTTLS", sessionTLS{policy: sts, required: true}, "starttls-not-supported"},
		{"sts enforce, expired", sessionTLS{policy: sts, required: true, offered: true, err: x509.CertificateInvalidError{Reason: x509.Expired}}, "certificate-expired"},
		{"sts testing, no STARTTLS", sessionTLS{policy: sts, stsTesting: true}, "starttls-not-supported"},
		{"sts testing, untrusted: judged as under enforce", sessionTLS{policy: sts, stsTesting: true, offered: true, verifyErr: untrusted}, "certificate-not-trusted"},
		{"sts testing, MX not listed", sessionTLS{policy: sts, stsTesting: true, stsMiss: true, offered: true, verified: true}, "validation-failure"},
		{"sts testing, verified", sessionTLS{policy: sts, stsTesting: true, offered: true, verified: true}, "ok"},
		{"tlsa, matched", sessionTLS{policy: tlsa, required: true, offered: true, verified: true}, "ok"},
		{"tlsa, no match", sessionTLS{policy: tlsa, required: true, offered: true, err: errNoTLSAMatch}, "tlsa-invalid"},
		{"tlsa, none usable, TLS on", sessionTLS{policy: tlsa, required: true, tlsaInvalid: true, offered: true}, "tlsa-invalid"},
		{"tlsa, no STARTTLS", sessionTLS{policy: tlsa, required: true}, "starttls-not-supported"},
	} {
		record, success, failure, why := sessionResult(tc.s)
		got := string(failure)
		switch {
		case !record:
			got = "-"
		case success:
			got = "ok"
		}
		if got != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, why, tc.want)
		}
		if record && !success && why == "" {
			t.Errorf("%s: a failure without a reason", tc.name)
		}
	}
}

// TestTLSReports delivers through each kind of policy and checks what the recorder gets: the
// policy, success or the failure's type, and a session's details. The certificates of h.ca
// are trusted, those of other are not.
func TestTLSReports(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	type env struct {
		h     *harness
		other *testCA
		port  string // the TLSA owner's port label
	}
	tlsaName := func(e env) string { return "_" + e.port + "._tcp." + mx }
	// dane publishes dest.test with the AD bits and a TLSA record rr (zone text, "" for none).
	dane := func(e env, rr string) {
		e.h.mx("dest.test", 10, mx, "127.0.0.2")
		e.h.dns.SetSecure("dest.test", mx, tlsaName(e))
		if rr != "" {
			e.h.dns.Add(e.h.t, rr)
		}
	}
	expired := func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	}
	testingPolicy := strings.Replace(enforcePolicy, "enforce", "testing", 1)
	tests := []struct {
		name   string
		policy TLSMode // the operator's, for dest.test
		sts    string  // the policy mta-sts.dest.test serves; "" for no MTA-STS
		stsSrv func(e env, s *stsServer)
		stsBad bool // the policy host's certificate is untrusted
		setup  func(e env) *peer
		relay  bool
		want   []string // per outcome: "TYPE ok" or "TYPE RESULT", and "@" when it names the session's addresses
	}{{
		name: "no policy, TLS with an untrusted certificate",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))}
		},
		want: []string{"no-policy-found ok"},
	}, {
		name: "no policy, no STARTTLS: nothing",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return &peer{name: mx}
		},
	}, {
		name: "no policy, failed handshake: one failure, not the plaintext retry",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return &peer{name: mx, badTLS: true}
		},
		want: []string{"no-policy-found validation-failure @"},
	}, {
		name: "no policy, STARTTLS refused",
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx)), tlsRefuse: "454 4.7.0 TLS not available"}
		},
		want: []string{"no-policy-found starttls-not-supported @"},
	}, {
		name:   "operator's verify, wrong name",
		policy: TLSVerify,
		setup: func(e env) *peer {
			e.h.mx("dest.test", 10, mx, "127.0.0.2")
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "other.test"))}
		},
		want: []string{"no-policy-found certificate-host-mismatch @"},
	}, {
		name: "sts enforce, trusted",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"sts ok"},
	}, {
		name: "sts enforce, untrusted",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))}
		},
		want: []string{"sts certificate-not-trusted @"},
	}, {
		name: "sts enforce, expired",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issueWith(e.h.t, expired, mx))}
		},
		want: []string{"sts certificate-expired @"},
	}, {
		name: "sts enforce, wrong name",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, "other.dest.test"))}
		},
		want: []string{"sts certificate-host-mismatch @"},
	}, {
		name: "sts enforce, no STARTTLS",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx}
		},
		want: []string{"sts starttls-not-supported @"},
	}, {
		name: "sts enforce, STARTTLS refused",
		sts:  enforcePolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx)), tlsRefuse: "454 4.7.0 TLS not available"}
		},
		want: []string{"sts starttls-not-supported @"},
	}, {
		name: "sts enforce, MX not in the policy: no session",
		sts:  "version: STSv1\nmode: enforce\nmx: mail.other.test\nmax_age: 600\n",
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"sts validation-failure"},
	}, {
		name: "sts testing, untrusted: reported, delivered",
		sts:  testingPolicy,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))}
		},
		want: []string{"sts certificate-not-trusted @"},
	}, {
		name:   "policy not found, then a session without policy",
		sts:    enforcePolicy,
		stsSrv: func(e env, s *stsServer) { s.set(func(s *stsServer) { s.status = http.StatusNotFound }) },
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, mx))}
		},
		want: []string{"sts sts-policy-fetch-error", "no-policy-found ok"},
	}, {
		name: "invalid policy",
		sts:  "version: STSv1\nmode: enforce\nmax_age: 600\n",
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"sts sts-policy-invalid", "no-policy-found ok"},
	}, {
		name:   "policy host with an untrusted certificate",
		sts:    enforcePolicy,
		stsBad: true,
		setup: func(e env) *peer {
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"sts sts-webpki-invalid", "no-policy-found ok"},
	}, {
		name: "DANE-EE match",
		setup: func(e env) *peer {
			cert := e.other.issue(e.h.t, mx)
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 3, 1, 1, cert.Leaf))
			return &peer{name: mx, tls: tlsConfig(cert)}
		},
		want: []string{"tlsa ok"},
	}, {
		name: "DANE-EE mismatch",
		setup: func(e env) *peer {
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"tlsa tlsa-invalid @"},
	}, {
		name: "DANE-TA with a wrong name",
		setup: func(e env) *peer {
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 2, 0, 1, e.other.cert))
			return &peer{name: mx, tls: tlsConfig(e.other.issue(e.h.t, "elsewhere.test"))}
		},
		want: []string{"tlsa certificate-host-mismatch @"},
	}, {
		name: "DANE-TA with an expired certificate",
		setup: func(e env) *peer {
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 2, 0, 1, e.other.cert))
			return &peer{name: mx, tls: tlsConfig(e.other.issueWith(e.h.t, expired, mx))}
		},
		want: []string{"tlsa certificate-expired @"},
	}, {
		name: "only unusable TLSA records: delivered over TLS, reported",
		setup: func(e env) *peer {
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 1, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"tlsa tlsa-invalid @"},
	}, {
		name: "DANE, no STARTTLS",
		setup: func(e env) *peer {
			dane(e, tlsaRR(e.h.t, tlsaName(e)+".", 3, 1, 1, e.other.issue(e.h.t, mx).Leaf))
			return &peer{name: mx}
		},
		want: []string{"tlsa starttls-not-supported @"},
	}, {
		name: "TLSA lookup fails under a validated route",
		setup: func(e env) *peer {
			dane(e, "")
			e.h.dns.Fail(tlsaName(e), dns.RcodeServerFailure)
			return &peer{name: mx, tls: tlsConfig(e.h.ca.issue(e.h.t, mx))}
		},
		want: []string{"tlsa dnssec-invalid"},
	}, {
		name:  "relayhost: no policy domain, nothing",
		relay: true,
		setup: func(e env) *peer {
			return &peer{name: "relay.test", tls: tlsConfig(e.other.issue(e.h.t, "relay.test"))}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			e := env{h: h, other: newCA(t), port: itoa(h.port)}
			var s *stsServer
			if tc.sts != "" {
				h.mx("dest.test", 10, mx, "127.0.0.2")
				h.dns.Add(t, `_mta-sts.dest.test. TXT "v=STSv1; id=1;"`)
				cert := h.ca.issue(t, "mta-sts.dest.test")
				if tc.stsBad {
					cert = e.other.issue(t, "mta-sts.dest.test")
				}
				s = h.stsServerWith(tc.sts, "127.0.0.1:0", cert)
				if tc.stsSrv != nil {
					tc.stsSrv(e, s)
				}
			}
			h.peer("127.0.0.2", tc.setup(e))
			rec := &recorder{}
			d := h.deliverer(func(o *Options) {
				o.TLSReports = rec
				if s != nil {
					o.HTTPClient = s.client(h)
				}
				if tc.policy != "" {
					o.TLSPolicy = map[string]TLSMode{"dest.test": tc.policy}
				}
				if tc.relay {
					o.Relayhost = "127.0.0.2:" + itoa(h.port)
				}
			})
			deliverAll(d, newEnv("bob@dest.test"), testMessage)
			got := rec.outcomes()
			if len(got) != len(tc.want) {
				t.Fatalf("%d outcomes, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				checkTLSOutcome(t, got[i], w, tc.sts, mx)
			}
		})
	}
}

// checkTLSOutcome checks o against want ("TYPE ok", "TYPE RESULT", "... @"); policy is the
// MTA-STS policy served, for an sts outcome's policy strings.
func checkTLSOutcome(t *testing.T, o tlsrpt.Outcome, want, policy, mx string) {
	t.Helper()
	f := strings.Fields(want)
	if o.PolicyDomain != "dest.test" || string(o.PolicyType) != f[0] {
		t.Errorf("outcome %+v: policy %s for %s, want %s for dest.test", o, o.PolicyType, o.PolicyDomain, f[0])
	}
	if f[1] == "ok" {
		if !o.Success || o.Failure != "" {
			t.Errorf("outcome %+v: want a success", o)
		}
	} else if o.Success || string(o.Failure) != f[1] || o.AdditionalInfo == "" {
		t.Errorf("outcome %+v: want failure %s, with the error", o, f[1])
	}
	session := len(f) > 2 && f[2] == "@"
	if session && (o.SendingIP != "127.0.0.1" || o.ReceivingIP != "127.0.0.2" || o.ReceivingMXHostname != mx || o.ReceivingMXHelo != mx) {
		t.Errorf("outcome %+v: want sending IP 127.0.0.1, receiving IP 127.0.0.2, MX and HELO %s", o, mx)
	}
	if !session && (o.SendingIP != "" || o.ReceivingIP != "") {
		t.Errorf("outcome %+v: addresses without a session", o)
	}
	switch o.PolicyType {
	case tlsrpt.PolicySTS:
		if o.Failure != tlsrpt.STSPolicyFetchError && o.Failure != tlsrpt.STSPolicyInvalid && o.Failure != tlsrpt.STSWebPKIInvalid {
			p, err := mtasts.Parse([]byte(policy))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(o.PolicyStrings, "\n")+"\n" != policy || strings.Join(o.MXHost, ",") != strings.Join(p.MX, ",") {
				t.Errorf("outcome %+v: want the policy's lines %q and mx %v", o, policy, p.MX)
			}
		}
	case tlsrpt.PolicyTLSA:
		if o.Failure != tlsrpt.DNSSECInvalid && (len(o.PolicyStrings) != 1 || !strings.HasPrefix(o.PolicyStrings[0], "_")) {
			t.Errorf("outcome %+v: want the TLSA record", o)
		}
		for _, s := range o.PolicyStrings {
			if _, err := dns.NewRR(s); err != nil {
				t.Errorf("policy string %q is not a record in presentation format: %v", s, err)
			}
		}
	default:
		if len(o.PolicyStrings) != 0 || len(o.MXHost) != 0 {
			t.Errorf("outcome %+v: a policy without policy", o)
		}
	}
}
