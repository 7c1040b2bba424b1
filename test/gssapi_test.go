package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// GSSAPI (Kerberos V5) against a real MIT KDC: scripts/krb5-realm.sh makes a throwaway realm
// TERN.TEST on loopback and runs krb5kdc in the foreground (stopped by its PID when the test
// ends), MIT's kinit fills the credential caches, and real GSSAPI clients nobody here wrote
// (GNU gsasl and msmtp through libgssglue and MIT's libgssapi_krb5, curl linked with MIT's
// GSS-API) authenticate to tern, as do tern's own client halves (tern send, tern auth gssapi),
// which also authenticate to Postfix with Cyrus SASL's GSSAPI plugin.

// realm is a running MIT KDC.
type realm struct {
	dir, config, smtpKeytab, otherKeytab, aliceKeytab string
	env                                               []string // KRB5_CONFIG and KRB5_KDC_PROFILE
}

// needKerberos checks the MIT tools the realm and the tests run.
func needKerberos(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/sbin/krb5kdc", "/usr/sbin/kdb5_util", "/usr/sbin/kadmin.local"} {
		if _, err := os.Stat(p); err != nil {
			missingTool(t, p+" (packages krb5-kdc, krb5-admin-server)", err)
		}
	}
	needTool(t, "kinit")
	needTool(t, "kvno")
}

// startRealm runs scripts/krb5-realm.sh run in a fresh directory, on a free loopback port, and
// waits until the KDC answers. The script execs krb5kdc, so the process started here is the
// KDC: it is stopped by its PID when the test ends.
func startRealm(t *testing.T) *realm {
	t.Helper()
	needKerberos(t)
	dir, err := os.MkdirTemp("", "tern-itest-krb5-")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "scripts", "krb5-realm.sh"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freeLoopbackPort(t))
	cmd := exec.Command("bash", script, "run", dir)
	cmd.Env = append(os.Environ(), "KRB5_PORT="+port, "SMTP_HOST="+testHostname, "PATH=/usr/sbin:/sbin:"+os.Getenv("PATH"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
			t.Logf("KDC log (%s):\n%s\nscript stderr:\n%s", dir, log, stderr.String())
			return
		}
		os.RemoveAll(dir)
	})
	r := &realm{dir: dir}
	vars := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
		if k == "KDC_PID" {
			break
		}
	}
	if vars["KDC_PID"] != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("krb5-realm.sh run: KDC_PID %q, want the script's own PID %d (it execs the KDC)\n%s", vars["KDC_PID"], cmd.Process.Pid, stderr.String())
	}
	go func() { // the KDC writes nothing more to stdout; drain it anyway
		for sc.Scan() {
		}
	}()
	r.config, r.smtpKeytab, r.otherKeytab, r.aliceKeytab = vars["KRB5_CONFIG"], vars["KRB5_SMTP_KEYTAB"], vars["KRB5_OTHER_KEYTAB"], vars["KRB5_ALICE_KEYTAB"]
	r.env = []string{"KRB5_CONFIG=" + r.config, "KRB5_KDC_PROFILE=" + vars["KRB5_KDC_PROFILE"]}
	waitFor(t, 10*time.Second, "the KDC on "+vars["KRB5_KDC"], func() bool {
		c, err := net.DialTimeout("tcp", vars["KRB5_KDC"], time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// kinit gets a ticket-granting ticket for principal (password principal+"-pw") into a new
// credential cache and returns the environment that uses it. args go to kinit (-l 4s).
func (r *realm) kinit(t *testing.T, principal string, args ...string) []string {
	t.Helper()
	cc := filepath.Join(t.TempDir(), "krb5cc")
	env := append(append([]string{}, r.env...), "KRB5CCNAME=FILE:"+cc)
	args = append(args, principal)
	_, errOut, code := runToolEnv(t, 30*time.Second, env, strings.NewReader(principal+"-pw\n"), "kinit", args...)
	if code != 0 {
		t.Fatalf("kinit %s: %s", principal, errOut)
	}
	return env
}

// kadmin runs a kadmin.local query on the realm.
func (r *realm) kadmin(t *testing.T, query string) {
	t.Helper()
	if out, errOut, code := runToolEnv(t, 30*time.Second, r.env, strings.NewReader(""), "/usr/sbin/kadmin.local", "-q", query); code != 0 || strings.Contains(errOut, "while ") {
		t.Fatalf("kadmin.local -q %q: %s%s", query, out, errOut)
	}
}

// gssapiConfig is tern's configuration for the realm's keytab. The clock skew is short so that
// an expired ticket need not be five minutes old, and the failure window tiny so that the
// refusals here never add up to a block.
func gssapiConfig(keytab string) string {
	return fmt.Sprintf("[auth]\ngssapi_keytab = %q\ngssapi_clock_skew = \"1s\"\nfailure_window = \"1ms\"\n", keytab)
}

// gssapiFailed waits for the log line of a refused GSSAPI exchange with reason in it.
func gssapiFailed(t *testing.T, tn *Tern, reason string) {
	t.Helper()
	re := regexp.MustCompile(`level=WARN msg="auth failed" .*remote=127\.0\.0\.1 .*mech=GSSAPI .*reason=".*` + reason)
	waitFor(t, 5*time.Second, "the log line of the refused GSSAPI exchange: "+reason, func() bool { return re.MatchString(tn.Log()) })
}

func TestGSSAPI(t *testing.T) {
	t.Parallel()
	r := startRealm(t)
	tn := startTern(t, ternOpts{Config: gssapiConfig(r.smtpKeytab)})
	tn.AddUser("alice@example.test", "not-used-by-gssapi")
	mustMatch(t, "tern log", tn.Log(), `level=INFO msg=GSSAPI principal=smtp/mx\.example\.test@TERN\.TEST `)
	alice := r.kinit(t, "alice")
	bob := r.kinit(t, "bob") // a principal of the realm without a tern account
	host, port := splitAddr(t, tn.Submission)

	// gsasl: GNU SASL's GSSAPI goes through libgssglue, which loads MIT's libgssapi_krb5
	// (/etc/gssapi_mech.conf). It asks for mutual authentication: tern sends an AP-REP.
	gsasl := func(t *testing.T, env []string, hostname string) (string, int) {
		bin := needTool(t, "gsasl")
		args := []string{"--smtp", "--mechanism", "GSSAPI", "--service", "smtp", "--hostname", hostname,
			"--no-starttls", "--verbose", host, port}
		out, errOut, code := runToolEnv(t, 30*time.Second, env, strings.NewReader(""), bin, args...)
		return out + errOut, code
	}
	t.Run("gsasl", func(t *testing.T) {
		t.Parallel()
		out, code := gsasl(t, alice, testHostname)
		mustMatch(t, "gsasl", out, `^AUTH GSSAPI\r?$`)
		mustMatch(t, "gsasl", out, `^`+authOKRE+`\r?$`)
		if code != 0 {
			t.Fatalf("gsasl exit status %d", code)
		}
		waitFor(t, 5*time.Second, "the auth log line", func() bool {
			return regexp.MustCompile(`msg=auth .*mech=GSSAPI user=alice@example\.test`).MatchString(tn.Log())
		})
	})
	// curl: linked with MIT's GSS-API; it asks for no mutual authentication, so tern goes
	// straight to the security layer offer. -u : takes the user from the ticket.
	t.Run("curl", func(t *testing.T) {
		t.Parallel()
		curl := needTool(t, "curl")
		tok := token(t)
		msg := writeFile(t, "msg.txt", "Subject: curl GSSAPI "+tok+"\r\n\r\nhello\r\n")
		out, errOut, code := runToolEnv(t, 30*time.Second, alice, strings.NewReader(""), curl, "-sS", "-v",
			"--url", "smtp://"+testHostname+":"+port, "--resolve", testHostname+":"+port+":127.0.0.1",
			"--ssl-reqd", "--cacert", filepath.Join(tn.Data, "tls", "cert.pem"),
			"--login-options", "AUTH=GSSAPI", "-u", ":",
			"--mail-from", "alice@example.test", "--mail-rcpt", "alice@example.test", "-T", msg)
		all := out + errOut
		mustMatch(t, "curl -v", all, `^> AUTH GSSAPI\r?$`)
		mustMatch(t, "curl -v", all, `^< `+authOKRE+`\r?$`)
		if code != 0 {
			t.Fatalf("curl exit status %d", code)
		}
		m := tn.WaitMessage("alice@example.test", tok, 10*time.Second)
		mustMatch(t, "Received", header(m, "Received"), `with ESMTPSA id `)
	})
	// msmtp (through GNU SASL, like gsasl) names the service by the host it connects to, here
	// 127.0.0.1 (the test hosts are not in DNS): a second server is smtp/127.0.0.1.
	t.Run("msmtp", func(t *testing.T) {
		t.Parallel()
		msmtp := needTool(t, "msmtp")
		kt := filepath.Join(t.TempDir(), "ip.keytab")
		r.kadmin(t, "addprinc -randkey smtp/127.0.0.1")
		r.kadmin(t, "ktadd -k "+kt+" smtp/127.0.0.1")
		ip := startTern(t, ternOpts{Config: gssapiConfig(kt) + "gssapi_principal = \"smtp/127.0.0.1\"\n"})
		ip.AddUser("alice@example.test", "x")
		h, p := splitAddr(t, ip.Submission)
		tok := token(t)
		out, errOut, code := runToolEnv(t, 30*time.Second, alice, strings.NewReader("Subject: msmtp "+tok+"\r\n\r\nhello\r\n"), msmtp,
			"--host="+h, "--port="+p, "--domain=client.example.com", "--tls=off", "--auth=gssapi", "--user=alice",
			"-v", "--from=alice@example.test", "alice@example.test")
		all := out + errOut
		mustMatch(t, "msmtp -v", all, `^--> AUTH GSSAPI\r?$`)
		mustMatch(t, "msmtp -v", all, `^<-- `+authOKRE+`\r?$`)
		if code != 0 {
			t.Fatalf("msmtp exit status %d", code)
		}
		ip.WaitMessage("alice@example.test", tok, 10*time.Second)
	})
	t.Run("tern send", func(t *testing.T) {
		t.Parallel()
		for name, args := range map[string][]string{
			"credential cache": nil,
			"keytab":           {"--keytab", r.aliceKeytab, "--principal", "alice@TERN.TEST"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tok := token(t)
				env := alice
				if args != nil {
					env = append(append([]string{}, r.env...), "KRB5CCNAME=FILE:/nonexistent/cache")
				}
				all := append([]string{"send", "--server", tn.Submission, "--starttls", "--ca", filepath.Join(tn.Data, "tls", "cert.pem"),
					"--spn", "smtp/" + testHostname, "--auth", "GSSAPI", "--from", "alice@example.test", "--to", "alice@example.test",
					"--header", "Subject: tern send " + tok}, args...)
				out, errOut, code := runToolEnv(t, 30*time.Second, env, strings.NewReader(""), ternBin, all...)
				wantStatus(t, code, 0, out+errOut)
				mustMatch(t, "transcript", out, `^ ## GSSAPI AP-REQ \(RFC 4121 §4\.1\): a ticket for smtp/mx\.example\.test@TERN\.TEST, aes256-cts-hmac-sha1-96, kvno \d+; mutual authentication asked for$`)
				mustMatch(t, "transcript", out, `^ ## GSSAPI AP-REP `)
				mustMatch(t, "transcript", out, `^ ## GSSAPI Wrap token .* from the server, .*security layers offered none, max size 0`)
				mustMatch(t, "transcript", out, `^<~  `+authOKRE+`$`)
				tn.WaitMessage("alice@example.test", tok, 10*time.Second)
			})
		}
	})
	// tern auth gssapi by hand: its lines go to a raw SMTP dialogue.
	t.Run("tern auth", func(t *testing.T) {
		t.Parallel()
		d := ehlod(t, tn.SMTP, false)
		a := startLineProc(t, "env", append(append([]string{}, alice...), ternBin, "auth", "gssapi", testHostname)...)
		rep := d.cmd("AUTH GSSAPI "+a.line(), `^334 \S+`) // the AP-REP
		a.send(rep)
		offer := d.cmd(a.line(), `^334 \S+`) // the empty response; then the offer
		a.send(offer)
		d.cmd(a.line(), authOKRE)
		if code, _ := a.wait(); code != 0 {
			t.Fatalf("tern auth gssapi: status %d: %s", code, a.stderr.String())
		}
	})

	// The refusals: each a 535 and a log line that says why.
	t.Run("ticket for another service", func(t *testing.T) {
		t.Parallel()
		out, _ := gsasl(t, alice, "other.example.test")
		mustMatch(t, "gsasl", out, `^`+authFailedRE+`\r?$`)
		gssapiFailed(t, tn, `the ticket is for smtp/other\.example\.test@TERN\.TEST, not for this server's smtp/mx\.example\.test@TERN\.TEST`)
	})
	t.Run("unmapped principal", func(t *testing.T) {
		t.Parallel()
		out, _ := gsasl(t, bob, testHostname)
		mustMatch(t, "gsasl", out, `^`+authFailedRE+`\r?$`)
		gssapiFailed(t, tn, `the principal bob@TERN\.TEST maps to bob, which is not an account`)
	})
	t.Run("expired ticket", func(t *testing.T) {
		t.Parallel()
		// A ticket that lives 3 seconds: tern auth gssapi makes its AP-REQ at once, which is
		// sent when the ticket (and the 1s of allowed skew) are over.
		short := r.kinit(t, "alice", "-l", "3s")
		a := startLineProc(t, "env", append(append([]string{}, short...), ternBin, "auth", "gssapi", testHostname)...)
		ir := a.line()
		time.Sleep(5 * time.Second)
		d := ehlod(t, tn.SMTP, false)
		d.cmd("AUTH GSSAPI "+ir, authFailedRE)
		gssapiFailed(t, tn, `the ticket of alice@TERN\.TEST expired at `)
	})
	t.Run("keytab without the service principal", func(t *testing.T) {
		t.Parallel()
		// A server given the keytab of smtp/other.example.test: it warns at start, and refuses.
		other := startTern(t, ternOpts{Config: gssapiConfig(r.otherKeytab)})
		other.AddUser("alice@example.test", "x")
		mustMatch(t, "tern log", other.Log(), `level=WARN msg="GSSAPI will fail" .*the keytab has no key for smtp/mx\.example\.test@TERN\.TEST \(it has smtp/other\.example\.test@TERN\.TEST\)`)
		h, p := splitAddr(t, other.Submission)
		out, _, _ := runToolEnv(t, 30*time.Second, alice, strings.NewReader(""), needTool(t, "gsasl"), "--smtp", "--mechanism", "GSSAPI",
			"--service", "smtp", "--hostname", testHostname, "--no-starttls", h, p)
		mustMatch(t, "gsasl", out, `^`+authFailedRE+`\r?$`)
		gssapiFailed(t, other, `the keytab has no key for smtp/mx\.example\.test@TERN\.TEST \(kvno \d+, encryption type 18\)`)
	})
	t.Run("postfix", func(t *testing.T) {
		t.Parallel()
		testGSSAPIPostfix(t, r, alice)
	})
}

// testGSSAPIPostfix: tern send --auth GSSAPI to a private Postfix whose smtpd uses Cyrus SASL's
// GSSAPI plugin (MIT), with the keytab of smtp/pf.example.test passed in KRB5_KTNAME.
func testGSSAPIPostfix(t *testing.T, r *realm, alice []string) {
	if m, _ := filepath.Glob("/usr/lib/*/sasl2/libgssapiv2.so*"); len(m) == 0 {
		missingTool(t, "the Cyrus SASL GSSAPI plugin (package libsasl2-modules-gssapi-mit)", os.ErrNotExist)
	}
	pf := startPostfix(t, true)
	kt := filepath.Join(pf.dir, "sasl", "smtp.keytab")
	r.kadmin(t, "addprinc -randkey smtp/pf.example.test")
	r.kadmin(t, "ktadd -k "+kt+" smtp/pf.example.test")
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	if err := os.Chown(kt, uid, -1); err != nil {
		t.Fatal(err)
	}
	// smtpd runs as postfix and reads the realm's krb5.conf (the KDC's database stays 0600).
	if err := os.Chmod(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(pf.conf, "sasl", "smtpd.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), "mech_list: ", "mech_list: GSSAPI ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Postfix hands its daemons only the environment named in import_environment, which the
	// master reads when it starts (not on reload).
	imp := "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C KRB5_CONFIG=" + r.config + " KRB5_KTNAME=FILE:" + kt
	for _, cmd := range [][]string{{"/usr/sbin/postconf", "-c", pf.conf, "-e", imp},
		{"/usr/sbin/postfix", "-c", pf.conf, "stop"}, {"/usr/sbin/postfix", "-c", pf.conf, "start"}} {
		if out, errOut, code := runTool(t, 30*time.Second, "", cmd[0], cmd[1:]...); code != 0 {
			t.Fatalf("%s: %s%s", strings.Join(cmd, " "), out, errOut)
		}
	}
	tok := token(t)
	args := []string{"send", "--server", pf.addr, "--starttls", "--ca", pf.ca, "--ehlo", "client.example.com",
		"--spn", "smtp/pf.example.test", "--auth", "GSSAPI",
		"--from", "alice@example.test", "--to", "bob@example.test", "--header", "Subject: " + tok}
	var out string
	waitFor(t, 20*time.Second, "Postfix offering GSSAPI", func() bool {
		o, e, _ := runToolEnv(t, 30*time.Second, alice, strings.NewReader(""), ternBin, append(append([]string{}, args...), "--quit-after", "ehlo")...)
		out = o + e
		return regexp.MustCompile(`(?m)^<[-~]  250-AUTH .*GSSAPI`).MatchString(out)
	})
	o, e, code := runToolEnv(t, 60*time.Second, alice, strings.NewReader(""), ternBin, args...)
	out = o + e
	wantStatus(t, code, 0, out)
	mustMatch(t, "transcript", out, `^<~  235 2\.7\.0 Authentication successful$`)
	id := mustMatch(t, "transcript", out, pfQueuedRE)[1]
	pf.waitMessage(tok)
	waitFor(t, 10*time.Second, "Postfix's log line for "+id, func() bool {
		log, _ := os.ReadFile(pf.log)
		// Cyrus takes the principal's name in smtpd_sasl_local_domain.
		return regexp.MustCompile(id + `: client=localhost\[127\.0\.0\.1\], sasl_method=GSSAPI, sasl_username=alice@example\.test`).Match(log)
	})
}
