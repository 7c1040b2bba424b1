package test

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dkimRecord finds the zone-file line of selector in out and returns its TXT value, the
// strings joined, after checking that none is longer than a TXT string may be (255 octets).
func dkimRecord(t *testing.T, out, selector, domain string) string {
	t.Helper()
	line := mustMatch(t, "record", out, `(?m)^`+regexp.QuoteMeta(selector+"._domainkey."+domain+".")+` IN TXT (.*)$`)[1]
	var value strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(line, -1) {
		if len(m[1]) > 255 {
			t.Errorf("a TXT string of %d octets: %s", len(m[1]), line)
		}
		value.WriteString(m[1])
	}
	return value.String()
}

// publicKey decodes the p= of a key record and checks its algorithm.
func publicKey(t *testing.T, value string) any {
	t.Helper()
	m := mustMatch(t, "key record", value, `^v=DKIM1; k=(rsa|ed25519); p=([A-Za-z0-9+/=]+)$`)
	der, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		t.Fatal(err)
	}
	if m[1] == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			t.Fatalf("ed25519 key of %d octets", len(der))
		}
		return ed25519.PublicKey(der)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestDKIMCommands: tern dkim keygen, list and rotate, on an existing data directory only.
func TestDKIMCommands(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	dkim := func(args ...string) (string, string, int) {
		t.Helper()
		return runTool(t, time.Minute, "", ternBin, append(append([]string{"dkim"}, args...), "--data", data)...)
	}
	if _, errOut, code := dkim("keygen", "example.test"); code == 0 || !strings.Contains(errOut, "there is no data directory") {
		t.Fatalf("keygen without a data directory: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("keygen made the data directory")
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format("20060102")

	out, errOut, code := dkim("keygen", "Example.TEST.")
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	if pub, ok := publicKey(t, dkimRecord(t, out, today+"-rsa", "example.test")).(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 {
		t.Errorf("the rsa record is not a 2048-bit RSA key")
	}
	out, errOut, code = dkim("keygen", "example.test", "--algorithm", "ed25519", "--selector", "mail")
	if code != 0 {
		t.Fatalf("keygen ed25519: exit %d: %s", code, errOut)
	}
	if _, ok := publicKey(t, dkimRecord(t, out, "mail", "example.test")).(ed25519.PublicKey); !ok {
		t.Errorf("the ed25519 record is not an Ed25519 key")
	}
	if fi, err := os.Stat(filepath.Join(data, "accounts.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("accounts.db, which holds the private keys: %v %v, want mode 0600", fi.Mode(), err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen", "example.test"}, "already has the active rsa key " + today + "-rsa (tern dkim rotate example.test"},
		{[]string{"keygen", "other.test", "--selector", "mail"}, ""},
		{[]string{"keygen", "other.test", "--selector", "mail", "--algorithm", "ed25519"}, "already has a key with selector mail"},
		{[]string{"keygen", "bad_domain.test"}, `bad domain "bad_domain.test"`},
		{[]string{"keygen", "localhost"}, "at least two labels"},
		{[]string{"keygen", "a.test", "--selector", "x;y"}, `bad selector "x;y"`},
		{[]string{"keygen", "a.test", "--algorithm", "dsa"}, `unknown algorithm "dsa"`},
		{[]string{"rotate", "none.test"}, "none.test has no active DKIM key to rotate"},
		{[]string{"rotate", "example.test", "--activate"}, "no published key to activate"},
	} {
		_, errOut, code := dkim(c.args...)
		if c.want == "" {
			if code != 0 {
				t.Errorf("dkim %s: exit %d: %s", c.args, code, errOut)
			}
			continue
		}
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("dkim %s: exit %d, %q; want an error saying %q", c.args, code, errOut, c.want)
		}
	}

	// Rotation: new keys published, not used; then switched, the old ones kept as retired.
	out, errOut, code = dkim("rotate", "example.test")
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errOut)
	}
	dkimRecord(t, out, today+"-rsa-2", "example.test")
	dkimRecord(t, out, today+"-ed25519", "example.test")
	mustMatch(t, "rotate", out, `then run tern dkim rotate example.test --activate`)
	if _, errOut, code := dkim("rotate", "example.test"); code == 0 || !strings.Contains(errOut, "--activate switches to it") {
		t.Errorf("a second rotate: exit %d, %s", code, errOut)
	}
	out, _, _ = dkim("list")
	for _, row := range []string{
		`example\.test +` + today + `-rsa +rsa +active `,
		`example\.test +mail +ed25519 +active `,
		`example\.test +` + today + `-rsa-2 +rsa +published `,
		`example\.test +` + today + `-ed25519 +ed25519 +published `,
		`other\.test +mail +rsa +active `,
	} {
		mustMatch(t, "list", out, `(?m)^`+row)
	}
	if out, errOut, code = dkim("rotate", "example.test", "--activate"); code != 0 {
		t.Fatalf("rotate --activate: exit %d: %s", code, errOut)
	}
	mustMatch(t, "activate", out, `(?m)^rsa key `+today+`-rsa of example\.test: retired$`)
	mustMatch(t, "activate", out, `(?m)^ed25519 key mail of example\.test: retired$`)
	mustMatch(t, "activate", out, `(?m)^rsa key `+today+`-rsa-2 of example\.test: active$`)
	out, _, _ = dkim("list", "--records")
	mustMatch(t, "list", out, `(?m)^example\.test +`+today+`-rsa +rsa +retired `)
	mustMatch(t, "list", out, `(?m)^example\.test +`+today+`-ed25519 +ed25519 +active `)
	// Every key's record, retired ones too: they stay published for mail on its way.
	for _, sel := range []string{today + "-rsa", "mail", today + "-rsa-2", today + "-ed25519"} {
		publicKey(t, dkimRecord(t, out, sel, "example.test"))
	}
}
