package dkim

// Cross-checks with independent implementations, run as programs: dkimpy (python3-dkim:
// dkimsign, and dkimverify's library through testdata/dkimpy_verify.py) and OpenDKIM
// (opendkim-tools: opendkim-genkey, opendkim-testmsg; opendkim: its -t test mode). No DNS is
// asked: the key records go to dkimpy as a dnsfunc and to OpenDKIM as TestPublicKeys.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// peer returns the path of a program scripts/test-deps.sh installs, or stops the test.
func peer(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		testutil.MissingPeer(t, name+" not found: install "+pkg+" (scripts/test-deps.sh)")
	}
	return p
}

// run runs a program with stdin and returns its output; the context kills it if it hangs.
func run(t *testing.T, stdin []byte, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// crlf makes a peer's LF line ends CRLF, as the message would travel.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

func TestDkimpySignsTernVerifies(t *testing.T) {
	dkimsign := peer(t, "dkimsign", "python3-dkim")
	dir := t.TempDir()
	rk, _, err := GenerateKey(RSA)
	if err != nil {
		t.Fatal(err)
	}
	ek, _, err := GenerateKey(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk.(*rsa.PrivateKey))})
	// dkimpy reads an Ed25519 private key as the base64 of its 32-octet seed.
	edSeed := base64.StdEncoding.EncodeToString(ek.(ed25519.PrivateKey).Seed())
	res := mapResolver{}
	for _, k := range []struct {
		alg, sel, file, canon string
		key                   []byte
	}{
		{"rsa-sha256", "py-rsa", "rsa.pem", "relaxed", rsaPEM},
		{"rsa-sha256", "py-rsa-simple", "rsa.pem", "simple", rsaPEM},
		{"ed25519-sha256", "py-ed", "ed.key", "relaxed", []byte(edSeed + "\n")},
	} {
		file := filepath.Join(dir, k.file)
		if err := os.WriteFile(file, k.key, 0o600); err != nil {
			t.Fatal(err)
		}
		signer := rk
		if k.file == "ed.key" {
			signer = ek
		}
		txt, err := TXTValue(signer)
		if err != nil {
			t.Fatal(err)
		}
		res[RecordName(k.sel, "example.test")] = []string{txt}
		t.Run(k.sel, func(t *testing.T) {
			out, errOut, code := run(t, []byte(testMessage), dkimsign, "--hcanon", k.canon, "--bcanon", k.canon, "--signalg", k.alg, k.sel, "example.test", file)
			if code != 0 {
				t.Fatalf("dkimsign: exit %d: %s", code, errOut)
			}
			signed := crlf(out)
			v := mustVerify(t, signed, res)
			if got, want := statuses(v), "pass "+k.sel+" "+k.alg; got != want {
				t.Fatalf("got %q (%+v), want %q\n%s", got, v.Results, want, signed)
			}
			changed := bytes.Replace(signed, []byte("Subject: lunch"), []byte("Subject: dinner"), 1)
			if got, want := statuses(mustVerify(t, changed, res)), "fail "+k.sel+" "+k.alg; got != want {
				t.Errorf("changed Subject: got %q, want %q", got, want)
			}
		})
	}
}

// openDKIMVerify runs OpenDKIM's test mode on msg with the key records of res and returns a
// line per signature: "succeeded" or "failed".
func openDKIMVerify(t *testing.T, msg []byte, res mapResolver) []string {
	t.Helper()
	opendkim := peer(t, "opendkim", "opendkim")
	dir := t.TempDir()
	var keys strings.Builder
	for name, v := range res {
		fmt.Fprintf(&keys, "%s %s\n", name, v[0])
	}
	keyFile := filepath.Join(dir, "keys")
	conf := filepath.Join(dir, "opendkim.conf")
	msgFile := filepath.Join(dir, "msg")
	for f, s := range map[string]string{
		keyFile: keys.String(),
		conf:    "Mode v\nSyslog no\nTestPublicKeys " + keyFile + "\n",
		msgFile: string(msg),
	} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := run(t, nil, opendkim, "-x", conf, "-t", msgFile)
	if code != 0 {
		t.Fatalf("opendkim -t: exit %d: %s%s", code, out, errOut)
	}
	return regexp.MustCompile(`\) (succeeded|failed)`).FindAllString(out+errOut, -1)
}

// dkimpyPython is the Python that runs dkimpy's own dkimverify (the python3 first on PATH may
// be another one, without the dkim module).
func dkimpyPython(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile(peer(t, "dkimverify", "python3-dkim"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(script), "\n")
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 {
		t.Fatalf("dkimverify has no #! line")
	}
	if strings.HasSuffix(fields[0], "/env") && len(fields) > 1 {
		return fields[1]
	}
	return fields[0]
}

func TestTernSignsPeersVerify(t *testing.T) {
	verifyPy, err := filepath.Abs("testdata/dkimpy_verify.py")
	if err != nil {
		t.Fatal(err)
	}
	python := dkimpyPython(t)
	keys, res := testKeys(t)
	sigs, err := Sign(strings.NewReader(testMessage), keys)
	if err != nil {
		t.Fatal(err)
	}
	signed := []byte(sigs + testMessage)
	keyFile := filepath.Join(t.TempDir(), "keys")
	var records strings.Builder
	for name, v := range res {
		fmt.Fprintf(&records, "%s %s\n", name, v[0])
	}
	if err := os.WriteFile(keyFile, []byte(records.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		change   func([]byte) []byte
		dkimpy   string
		opendkim string
	}{
		{"as signed", nil, "pass\npass\n", ") succeeded"},
		// Whitespace relaxed canonicalisation ignores: folding, case of a field name, spaces.
		{"rewhitespaced", func(m []byte) []byte {
			m = bytes.Replace(m, []byte("Subject: lunch"), []byte("SUBJECT:\r\n  lunch "), 1)
			return bytes.Replace(m, []byte("Shall we?"), []byte("Shall   we?  "), 1)
		}, "pass\npass\n", ") succeeded"},
		{"body changed", func(m []byte) []byte { return bytes.Replace(m, []byte("Shall we?"), []byte("Shall we not?"), 1) }, "fail\nfail\n", ") failed"},
		{"To changed", func(m []byte) []byte { return bytes.Replace(m, []byte("To: alice@"), []byte("To: mallory@"), 1) }, "fail\nfail\n", ") failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.change == nil {
				c.change = func(m []byte) []byte { return m }
			}
			out, errOut, _ := run(t, c.change(signed), python, verifyPy, keyFile)
			if out != c.dkimpy {
				t.Errorf("dkimpy: got %q, want %q (%s)", out, c.dkimpy, errOut)
			}
			// OpenDKIM's test mode reports one signature: give it one at a time.
			for _, k := range keys {
				one, err := Sign(strings.NewReader(testMessage), []SigningKey{k})
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(openDKIMVerify(t, c.change([]byte(one+testMessage)), res), ","); got != c.opendkim {
					t.Errorf("OpenDKIM, key %s: got %q, want %q", k.Selector, got, c.opendkim)
				}
			}
		})
	}
}

// OpenDKIM's own key and signer. opendkim-testmsg signs with rsa-sha1 (no option changes it),
// which tern refuses as RFC 8301 requires while OpenDKIM still accepts it; the key
// opendkim-genkey makes, and its record, sign and verify with tern and OpenDKIM alike.
func TestOpenDKIMKeysAndSigner(t *testing.T) {
	genkey := peer(t, "opendkim-genkey", "opendkim-tools")
	testmsg := peer(t, "opendkim-testmsg", "opendkim-tools")
	dir := t.TempDir()
	if _, errOut, code := run(t, nil, genkey, "-D", dir, "-d", "example.test", "-s", "od"); code != 0 {
		t.Fatalf("opendkim-genkey: %s", errOut)
	}
	rec, err := os.ReadFile(filepath.Join(dir, "od.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// The zone-file record: ( "v=DKIM1; h=sha256; k=rsa; " "p=..." "..." ): join its strings.
	var value strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(string(rec), -1) {
		value.WriteString(m[1])
	}
	res := mapResolver{"od._domainkey.example.test": {value.String()}}
	// The same key without h=sha256, which otherwise refuses sha1 first.
	res["any._domainkey.example.test"] = []string{strings.Replace(value.String(), "h=sha256; ", "", 1)}

	keyPEM, err := os.ReadFile(filepath.Join(dir, "od.private"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, []byte(testMessage), testmsg, "-C", "-d", "example.test", "-s", "od", "-k", filepath.Join(dir, "od.private"))
	if code != 0 {
		t.Fatalf("opendkim-testmsg: exit %d: %s", code, errOut)
	}
	signed := crlf(out)
	v := mustVerify(t, signed, res)
	if got, want := statuses(v), "permerror od rsa-sha1"; got != want || !strings.Contains(v.Results[0].Reason, "inappropriate hash") {
		t.Errorf("OpenDKIM's rsa-sha1 signature: got %q (%s), want %q", got, v.Results[0].Reason, want)
	}
	v = mustVerify(t, bytes.Replace(signed, []byte("s=od;"), []byte("s=any;"), 1), res)
	if got, want := statuses(v), "permerror any rsa-sha1"; got != want || !strings.Contains(v.Results[0].Reason, "too weak") {
		t.Errorf("OpenDKIM's rsa-sha1 signature, key without h=: got %q (%s), want %q", got, v.Results[0].Reason, want)
	}

	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatalf("od.private is not PEM")
	}
	var key any
	if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	sigs, err := Sign(strings.NewReader(testMessage), []SigningKey{{Domain: "example.test", Selector: "od", Signer: key.(*rsa.PrivateKey)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(mustVerify(t, []byte(sigs+testMessage), res)); got != "pass od rsa-sha256" {
		t.Errorf("tern with OpenDKIM's key: %q", got)
	}
	if got := strings.Join(openDKIMVerify(t, []byte(sigs+testMessage), res), ","); got != ") succeeded" {
		t.Errorf("OpenDKIM on tern's signature with its key: %q", got)
	}
}
