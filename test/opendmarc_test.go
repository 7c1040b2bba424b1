package test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/testutil"
)

// openDMARCCheck runs OpenDMARC's opendmarc-check for domain against the DNS server at addr
// (an address on port 53). It asks the system resolver, whose resolv.conf can name no port: it
// runs in a mount namespace of its own (unshare, as root) where /etc/resolv.conf names addr.
func openDMARCCheck(t *testing.T, resolvConf, domain string) (string, error) {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec opendmarc-check "$2"`, "sh", resolvConf, domain)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serveDNS53 serves z on UDP port 53 of a loopback address of its own, for programs that can
// only ask the system resolver, and returns that address.
func serveDNS53(t *testing.T, z *testutil.DNS) string {
	t.Helper()
	var pc net.PacketConn
	var err error
	for range 10 {
		ip := fmt.Sprintf("127.53.%d.%d", rand.IntN(250)+1, rand.IntN(250)+1)
		if pc, err = net.ListenPacket("udp", ip+":53"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no loopback address with port 53 free: %v", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: z}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe() // nil at Shutdown
	}()
	<-started
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("DNS server on port 53: %v", err)
		}
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr).IP.String()
}

// openDMARCFields reads opendmarc-check's description of a record as tern dmarc check's
// names: p, sp, pct, adkim, aspf, rua.
func openDMARCFields(out string) map[string]string {
	names := map[string]string{"Sample percentage": "pct", "DKIM alignment": "adkim", "SPF alignment": "aspf",
		"Domain policy": "p", "Subdomain policy": "sp"}
	f := map[string]string{}
	var rua []string
	inRUA := false
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		switch {
		case strings.HasPrefix(line, "\tAggregate report URIs:"):
			inRUA = true
		case strings.HasPrefix(line, "\tFailure report URIs:"):
			inRUA = false
		case inRUA && strings.HasPrefix(line, "\t\t") && strings.TrimSpace(line) != "(none)":
			rua = append(rua, strings.TrimSpace(line))
		case ok && names[k] != "":
			f[names[k]] = map[string]string{"relaxed": "r", "strict": "s"}[v]
			if f[names[k]] == "" {
				f[names[k]] = v
			}
		}
	}
	f["rua"] = strings.Join(rua, " ")
	return f
}

// TestDMARCCheckOpenDMARC: the DMARC record that tern dmarc check finds for a domain, and what
// it reads in it, are what OpenDMARC's opendmarc-check (libopendmarc) finds and reads on the
// same DNS data; where they differ, RFC 7489 decides, and the test names the rule.
func TestDMARCCheckOpenDMARC(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("opendmarc-check"); err != nil {
		testutil.MissingPeer(t, "opendmarc-check (opendmarc) not installed: run scripts/test-deps.sh")
	}
	if os.Geteuid() != 0 {
		testutil.MissingPeer(t, "opendmarc-check asks the system resolver: pointing it at the test's DNS server takes root (a mount namespace, port 53)")
	}
	z := testutil.StartDNS(t,
		`_dmarc.full.test. TXT "v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=r; rua=mailto:a@full.test,mailto:b@other.test"`,
		`_dmarc.plain.test. TXT "v=DMARC1; p=none"`,
		`_dmarc.split.test. TXT "v=DMARC1; p=quar" "antine; pct=20"`,
		`_dmarc.mixed.test. TXT "v=spf1 -all"`, `_dmarc.mixed.test. TXT "v=DMARC1; p=reject"`,
		`_dmarc.unknown.test. TXT "v=DMARC1; p=quarantine; x-new=1"`,
		`_dmarc.nopolicy.test. TXT "v=DMARC1; pct=100"`,
		`_dmarc.notfirst.test. TXT "p=reject; v=DMARC1"`,
		`_dmarc.badp.test. TXT "v=DMARC1; p=bogus; rua=mailto:r@badp.test"`,
		`_dmarc.badpct.test. TXT "v=DMARC1; p=reject; pct=150"`,
		"empty.test. A 127.0.0.1",
	)
	rc := writeFile(t, "resolv.conf", "nameserver "+serveDNS53(t, z)+"\noptions timeout:2 attempts:2\n")
	if out, err := openDMARCCheck(t, rc, "full.test"); err != nil || !strings.Contains(out, "DMARC record for full.test") {
		testutil.MissingPeer(t, fmt.Sprintf("opendmarc-check cannot be pointed at the test's DNS server (unshare --mount, mount --bind): %v: %s", err, out))
	}
	for _, tc := range []struct {
		domain string
		// differs names the rule of RFC 7489 that tern follows where opendmarc-check does not;
		// empty: both must agree
		differs string
	}{
		{domain: "full.test"},
		{domain: "plain.test"},
		{domain: "split.test"},
		{domain: "mixed.test", differs: "§6.6.3 step 3: TXT records that are not DMARC records (here an SPF one) are discarded, and the DMARC one next to them counts"},
		{domain: "unknown.test"},
		{domain: "nopolicy.test"},
		{domain: "notfirst.test", differs: "§6.3 and §6.6.3 step 3: v=DMARC1 must be the first tag, else the record is discarded"},
		{domain: "empty.test"},
		{domain: "badp.test", differs: "§6.6.3 step 6: a record without a valid p= but with a valid rua= is taken as p=none"},
		{domain: "badpct.test", differs: "§6.3: a bad value of another tag falls back to its default (pct=100)"},
	} {
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "dmarc", "check", tc.domain, "--resolver", z.Addr)
		if code != 0 || errOut != "" {
			t.Fatalf("tern dmarc check %s: status %d: %s", tc.domain, code, errOut)
		}
		tern := map[string]string{}
		for line := range strings.SplitSeq(out, "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				tern[k] = v
			}
		}
		od, err := openDMARCCheck(t, rc, tc.domain)
		odFound := err == nil
		agree := odFound == (tern["result"] == "")
		if odFound && agree {
			f := openDMARCFields(od)
			if f["sp"] == "unspecified" {
				f["sp"] = f["p"] // RFC 7489 §6.3: without sp=, p= applies to subdomains
			}
			for _, k := range []string{"p", "sp", "pct", "adkim", "aspf", "rua"} {
				if f[k] != tern[k] {
					agree = false
				}
			}
		}
		switch {
		case tc.differs == "" && !agree:
			t.Errorf("%s: tern and opendmarc-check disagree\ntern:\n%s\nopendmarc-check (%v):\n%s", tc.domain, out, err, od)
		case tc.differs != "" && agree:
			t.Errorf("%s: tern and opendmarc-check agree, but the test says they differ (%s)\ntern:\n%s\nopendmarc-check:\n%s", tc.domain, tc.differs, out, od)
		case tc.differs != "":
			t.Logf("%s: tern follows RFC 7489 %s; opendmarc-check: %s", tc.domain, tc.differs, strings.TrimSpace(od))
		}
	}
	// opendmarc-check looks at the named domain only; tern goes on to the organisational
	// domain, whose sp= applies.
	out, _, _ := runTool(t, 30*time.Second, "", ternBin, "dmarc", "check", "Deep.Sub.Full.Test.", "--resolver", z.Addr)
	if !strings.HasPrefix(out, "domain: deep.sub.full.test\nrecord: _dmarc.full.test (its organisational domain)\np: reject\nsp: quarantine\napplies: quarantine\n") {
		t.Errorf("tern dmarc check deep.sub.full.test:\n%s", out)
	}
}
