package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// `tern auth` (the gen-auth of tern) through the built binary: the seeds' and the RFCs' vectors
// octet for octet, its strings against coreutils base64 and Python's hmac, against GNU gsasl's
// server half, and in live AUTH exchanges with a running tern, every mechanism tern serves.
// (tern does not serve XOAUTH2 or OAUTHBEARER, so those two have only their vectors.)

// The vectors.
const (
	seedCRAMChallenge = "PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg=="
	seedCRAMResponse  = "cG9zdG1hc3RlckBleGFtcGxlLmNvbSBjZWU4Mzk3YWIxMjNhMGQ0ZjNhN2ZkZGJiOWNiODcxOQ=="
	// The seeds' sendmail DIGEST-MD5 challenge.
	seedDigestChallenge = "bm9uY2U9IkFKUlVjNUp4MFVRYnY1U0o5Rm95VW5hWnBxWklIRGhMVFUrQXduL0swVXc9Iixxb3A9ImF1dGgsYXV0aC1pbnQsYXV0aC1jb25mIixjaXBoZXI9InJjNC00MCxyYzQtNTYscmM0LGRlcywzZGVzIixjaGFyc2V0PXV0Zi04LGFsZ29yaXRobT1tZDUtc2Vzcw=="
	// RFC 2831 §4.
	rfc2831Challenge = `realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`
	// MS-NLMP §4.2.4.3's CHALLENGE_MESSAGE, and what §4.2.4.2 makes of it for User/Password.
	msnlmpChallengeHex = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef00000000000000002400240044000000" +
		"060070170000000f53006500720076006500720002000c0044006f006d00610069006e0001000c0053006500720076006500720000000000"
	msnlmpNTResponse = "68cd0ab851e51c96aabc927bebef6a1c" + "01010000000000000000000000000000aaaaaaaaaaaaaaaa00000000" +
		"02000c0044006f006d00610069006e0001000c005300650072007600650072000000000000000000"
	msnlmpLMResponse = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
)

// authTool runs `tern auth ARGS...` with stdin and returns its output and exit status.
func authTool(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runTool(t, 30*time.Second, stdin, ternBin, append([]string{"auth"}, args...)...)
}

// authToolOK runs `tern auth` and fails unless it exits 0; it returns the lines of stdout.
func authToolOK(t testing.TB, stdin string, args ...string) []string {
	t.Helper()
	out, errOut, code := authTool(t, stdin, args...)
	if code != 0 {
		t.Fatalf("tern auth %s: status %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func unb64(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return string(b)
}

// TestAuthToolVectors: exact standard output for the seeds' and the RFCs' examples.
func TestAuthToolVectors(t *testing.T) {
	t.Parallel()
	digestRFC := []string{
		b64(`charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",cnonce="OA6MHXh6VqTrRk",nc=00000001,qop=auth,digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7`),
		b64("rspauth=ea40f60335c427b5527b84dbabcdfffd"),
	}
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		want  string // all of stdout
	}{
		{"seed CRAM-MD5", "", []string{"cram-md5", "postmaster@example.com", "pass", seedCRAMChallenge}, seedCRAMResponse + "\n"},
		{"seed CRAM-MD5, upper case, raw challenge", "", []string{"CRAM-MD5", "postmaster@example.com", "pass", "<20137.1267585100@indimail.org>"}, seedCRAMResponse + "\n"},
		{"seed CRAM-MD5, password on stdin", "pass\n", []string{"cram-md5", "postmaster@example.com", seedCRAMChallenge}, seedCRAMResponse + "\n"},
		{"RFC 2195", "", []string{"cram-md5", "tim", "tanstaaftanstaaf", "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"}, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\n"},
		{"seed PLAIN", "", []string{"plain", "kenneth.burgener", "ImBB1999!"}, seedPlain + "\n"},
		{"seed PLAIN, password on stdin", "ImBB1999!\n", []string{"Plain", "kenneth.burgener"}, seedPlain + "\n"},
		{"seed LOGIN", "", []string{"login", "kenneth.burgener", "ImBB1999!"}, seedLoginUser + "\n" + seedLoginPass + "\n"},
		{"RFC 2831 §4", "", []string{"digest-md5", "chris", "secret", b64(rfc2831Challenge),
			"--cnonce", "OA6MHXh6VqTrRk", "--service", "imap", "--host", "elwood.innosoft.com", "--realm", "elwood.innosoft.com"},
			strings.Join(digestRFC, "\n") + "\n"},
		{"RFC 2831 §4, flags first, raw challenge", "", []string{"digest-md5", "--cnonce=OA6MHXh6VqTrRk", "--service", "imap",
			"--host", "elwood.innosoft.com", "chris", "secret", rfc2831Challenge}, strings.Join(digestRFC, "\n") + "\n"},
		{"RFC 5802 §5", "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\nv=rmF9pqV8S7suAoZWja4dJRkFsKQ=\n",
			[]string{"scram-sha-1", "user", "pencil", "--nonce", "fyko+d2lbbFgONRv9qkxdawL"},
			b64("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL") + "\n" +
				b64("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=") + "\n\n"},
		{"RFC 7677 §3, password and base64 334 lines on stdin", "pencil\n334 " +
			b64("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") + "\r\n334 " +
			b64("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") + "\r\n",
			[]string{"SCRAM-SHA-256", "--nonce", "rOprNGfwEbeRWgbNEkqO", "user"},
			b64("n,,n=user,r=rOprNGfwEbeRWgbNEkqO") + "\n" +
				b64("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") + "\n\n"},
		{"Google XOAUTH2", "", []string{"xoauth2", "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"},
			"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\n"},
		{"RFC 7628 §4.1", "", []string{"oauthbearer", "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "--host", "server.example.com", "--port", "143"},
			b64("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01") + "\n"},
		{"encode", "", []string{"encode", "--escapes", `\0kenneth.burgener\0ImBB1999!`}, seedPlain + "\n"},
		{"encode stdin", "kenneth.burgener", []string{"encode"}, seedLoginUser + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := authTool(t, tt.stdin, tt.args...)
			if code != 0 || out != tt.want {
				t.Fatalf("status %d, stdout %q\nwant %q\nstderr: %s", code, out, tt.want, errOut)
			}
		})
	}

	t.Run("MS-NLMP 4.2.4", func(t *testing.T) {
		t.Parallel()
		challenge, err := hex.DecodeString(msnlmpChallengeHex)
		if err != nil {
			t.Fatal(err)
		}
		lines := authToolOK(t, "", "ntlm", "User", "Password", "Domain", base64.StdEncoding.EncodeToString(challenge),
			"--workstation", "COMPUTER", "--client-challenge", "aaaaaaaaaaaaaaaa", "--timestamp", "0")
		if len(lines) != 1 {
			t.Fatalf("%d lines", len(lines))
		}
		msg := []byte(unb64(t, lines[0]))
		for what, want := range map[string]string{"NT response": msnlmpNTResponse, "LM response": msnlmpLMResponse} {
			if w, _ := hex.DecodeString(want); !bytes.Contains(msg, w) {
				t.Errorf("the type 3 message has no %s %s:\n%x", what, want, msg)
			}
		}
		// And decode takes it apart as the spec says.
		out := strings.Join(authToolOK(t, "", "decode", lines[0]), "\n")
		for _, re := range []string{
			`NTLM AUTHENTICATE_MESSAGE \(type 3`, `user: +User\n`, `domain: +Domain\n`, `workstation: +COMPUTER\n`,
			`NT response: +NTLMv2 \(84 octets\)`, `NTProofStr: +68cd0ab851e51c96aabc927bebef6a1c\n`,
			`client challenge: +aaaaaaaaaaaaaaaa\n`, `time: +1601-01-01T00:00:00Z`, `MsvAvNbComputerName: +Server`,
		} {
			mustMatch(t, "decode of the type 3", out, re)
		}
	})

	t.Run("decode seed DIGEST-MD5 challenge", func(t *testing.T) {
		t.Parallel()
		out, _, code := authTool(t, "", "decode", "334 "+seedDigestChallenge)
		if code != 0 {
			t.Fatalf("status %d", code)
		}
		first, rest, _ := strings.Cut(out, "\n")
		if want := unb64(t, seedDigestChallenge); first != want {
			t.Errorf("first line %q, want the decoded challenge %q", first, want)
		}
		for _, re := range []string{
			`^DIGEST-MD5 digest-challenge \(RFC 2831 §2\.1\.1\)$`,
			`^  nonce: +AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU\+Awn/K0Uw= `,
			`^  qop: +auth,auth-int,auth-conf `, `^  cipher: +rc4-40,rc4-56,rc4,des,3des `,
			`^  charset: +utf-8 `, `^  algorithm: +md5-sess `, `^  note: no realm offered`,
		} {
			mustMatch(t, "decode", rest, re)
		}
	})

	t.Run("decode seed PLAIN", func(t *testing.T) {
		t.Parallel()
		out, _, code := authTool(t, "", "decode", seedPlain)
		mustMatch(t, "decode", out, `\A\\0kenneth\.burgener\\0\*\*\*\nPLAIN message`)
		mustNotMatch(t, "decode", out, `ImBB1999`)
		if code != 0 {
			t.Fatalf("status %d", code)
		}
		out, _, _ = authTool(t, "", "decode", "--show-secrets", seedPlain)
		mustMatch(t, "decode --show-secrets", out, `\A\\0kenneth\.burgener\\0ImBB1999!\n`)
	})
}

// TestAuthToolCLI: exit statuses, usage, --explain on stderr only and without the password.
func TestAuthToolCLI(t *testing.T) {
	t.Parallel()
	t.Run("help", func(t *testing.T) {
		t.Parallel()
		out, _, code := authTool(t, "", "-h")
		if code != 0 {
			t.Fatalf("status %d", code)
		}
		for _, m := range []string{"plain", "login", "cram-md5", "cram-sha1", "digest-md5", "scram-sha-1", "scram-sha-256",
			"ntlm", "xoauth2", "oauthbearer", "encode", "decode"} {
			mustMatch(t, "tern auth -h", out, `(?i)^  (\S+ \| )?`+regexp.QuoteMeta(m)+`\b.*\n +tern auth `)
		}
		out, _, code = authTool(t, "", "digest-md5", "-h")
		if code != 0 {
			t.Fatalf("digest-md5 -h: status %d", code)
		}
		mustMatch(t, "tern auth digest-md5 -h", out, `-cnonce string`)
	})
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		re    string // in stderr
	}{
		{"no mechanism", nil, "", 2, `tern auth: missing MECH`},
		{"unknown mechanism", []string{"kerberos_v4", "u"}, "", 2, `unknown mechanism "kerberos_v4"`},
		{"too few arguments", []string{"cram-md5", "u"}, "", 2, `want USER \[PASS\] CHALLENGE, got 1`},
		{"too many arguments", []string{"plain", "a", "b", "c"}, "", 2, `got 3 argument`},
		{"flag of another mechanism", []string{"plain", "--nonce", "x", "u", "p"}, "", 2, `unknown flag: --nonce`},
		{"-PLUS", []string{"SCRAM-SHA-256-PLUS", "u", "p"}, "", 2, `-PLUS mechanisms bind the exchange to the client's TLS connection`},
		{"no password on stdin", []string{"plain", "u"}, "", 2, `no password`},
		{"bad client challenge", []string{"ntlm", "u", "p", "d", "TlRMTVNTUAACAAAA", "--client-challenge", "xyz"}, "", 2, `--client-challenge`},
		{"challenge not base64", []string{"cram-md5", "u", "p", "not base64!"}, "", 1, `not base64`},
		{"not a digest challenge", []string{"digest-md5", "u", "p", b64("hello")}, "", 1, `not a digest-challenge`},
		{"wrong server signature", []string{"scram-sha-1", "user", "wrong", "--nonce", "fyko+d2lbbFgONRv9qkxdawL"},
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\nv=rmF9pqV8S7suAoZWja4dJRkFsKQ=\n", 1, `did not prove`},
		{"server refuses", []string{"scram-sha-1", "user", "wrong", "--nonce", "fyko+d2lbbFgONRv9qkxdawL"},
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\ne=invalid-proof\n", 1, `the server refused: e=invalid-proof \(wrong password\)`},
		{"stdin ends early", []string{"scram-sha-256", "user", "pencil"}, "", 1, `standard input ended before the server-first-message`},
		{"decode not base64", []string{"decode", "a!b"}, "", 1, `not base64`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, errOut, code := authTool(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("status %d, want %d", code, tt.code)
			}
			mustMatch(t, "stderr", errOut, tt.re)
			if tt.code == 2 {
				// One line: what was wrong, and where the usage is; not tern's whole command list.
				mustMatch(t, "stderr", errOut, `\Atern auth[: ][^\n]+; see 'tern auth( [a-z0-9-]+)? --help'\n\z`)
				mustNotMatch(t, "stderr", errOut, `queue list`)
			}
		})
	}
	t.Run("explain", func(t *testing.T) {
		t.Parallel()
		out, errOut, code := authTool(t, "", "login", "--explain", "kenneth.burgener", "ImBB1999!")
		if code != 0 || out != seedLoginUser+"\n"+seedLoginPass+"\n" {
			t.Fatalf("status %d, stdout %q: --explain must not change stdout", code, out)
		}
		mustMatch(t, "stderr", errOut, `^## LOGIN answer to 334 VXNlcm5hbWU6 \("Username:"\): the user name\n##   text: kenneth\.burgener\n`)
		mustMatch(t, "stderr", errOut, `^##   text: \*\*\*$`)
		mustNotMatch(t, "stderr", errOut, `ImBB1999`)
		_, errOut, _ = authTool(t, "", "login", "--explain", "--show-secrets", "kenneth.burgener", "ImBB1999!")
		mustMatch(t, "stderr with --show-secrets", errOut, `^##   text: ImBB1999!$`)
	})
}

// TestAuthToolScramSignature: tern auth scram-* says on standard error whether the server's
// signature verified (RFC 5802 §5's exchange): with the right password it did, status 0; with
// another, the v= of a server that knows "pencil" is not what this client expects, so it did
// not, status 1, and no empty response is printed.
func TestAuthToolScramSignature(t *testing.T) {
	t.Parallel()
	const serverLines = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\nv=rmF9pqV8S7suAoZWja4dJRkFsKQ=\n"
	for _, tt := range []struct {
		name, password string
		code           int
		stderr         string
		lines          int // on stdout: client-first, client-final, and the empty response
	}{
		{"verified", "pencil", 0, `\Athe server's signature verified: it knows the password \(or its stored keys\); answer its last 334 with the empty line printed last\n\z`, 3},
		{"not verified", "pencil?", 1, `\Atern: the server's signature did not verify: the server did not prove that it knows the password \(wrong password, or not the server you think\)`, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := authTool(t, serverLines, "scram-sha-1", "user", tt.password, "--nonce", "fyko+d2lbbFgONRv9qkxdawL")
			if code != tt.code {
				t.Fatalf("status %d, want %d\nstderr: %s", code, tt.code, errOut)
			}
			mustMatch(t, "stderr", errOut, tt.stderr)
			if n := strings.Count(out, "\n"); n != tt.lines {
				t.Errorf("%d lines on stdout, want %d: %q", n, tt.lines, out)
			}
		})
	}
}

// TestAuthToolRealTools: what tern auth prints is what the tools people use by hand make:
// coreutils base64 for PLAIN and LOGIN, Python's hmac and base64 for CRAM-MD5 and CRAM-SHA1.
func TestAuthToolRealTools(t *testing.T) {
	t.Parallel()
	sh := needTool(t, "sh")
	needTool(t, "base64")
	python := needTool(t, "python3")
	creds := [][2]string{
		{"kenneth.burgener", "ImBB1999!"},
		{"postmaster@example.com", "pass"},
		{"zoë@example.test", "pässwörd 密码"},
		{"user", `quote"back\slash$dollar`},
	}
	for _, c := range creds {
		user, pw := c[0], c[1]
		t.Run(user, func(t *testing.T) {
			t.Parallel()
			want, errOut, code := runTool(t, 30*time.Second, "", sh, "-c", `printf '\000%s\000%s' "$1" "$2" | base64 -w0; echo`, "sh", user, pw)
			if code != 0 {
				t.Fatalf("printf | base64: %s", errOut)
			}
			if got := authToolOK(t, "", "plain", "--", user, pw); got[0]+"\n" != want {
				t.Errorf("tern auth plain = %q, printf | base64 = %q", got[0], want)
			}
			var wantLogin []string
			for _, s := range []string{user, pw} {
				w, _, _ := runTool(t, 30*time.Second, "", sh, "-c", `printf %s "$1" | base64 -w0`, "sh", s)
				wantLogin = append(wantLogin, w)
			}
			if got := authToolOK(t, "", "login", "--", user, pw); strings.Join(got, "|") != strings.Join(wantLogin, "|") {
				t.Errorf("tern auth login = %q, printf | base64 = %q", got, wantLogin)
			}
			const cram = `import base64, hashlib, hmac, sys
user, pw, challenge, h = sys.argv[1:5]
digest = hmac.new(pw.encode(), base64.b64decode(challenge), getattr(hashlib, h)).hexdigest()
print(base64.b64encode((user + " " + digest).encode()).decode())`
			for mech, h := range map[string]string{"cram-md5": "md5", "cram-sha1": "sha1"} {
				for _, challenge := range []string{seedCRAMChallenge, b64("<1896.697170952@postoffice.reston.mci.net>")} {
					want, errOut, code := runTool(t, 30*time.Second, "", python, "-c", cram, user, pw, challenge, h)
					if code != 0 {
						t.Fatalf("python3: %s", errOut)
					}
					if got := authToolOK(t, "", mech, "--", user, pw, challenge); got[0]+"\n" != want {
						t.Errorf("tern auth %s = %q, python3 hmac = %q", mech, got[0], want)
					}
				}
			}
		})
	}
}

// lineProc is a running process whose standard input and output are pipes, read line by line.
type lineProc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *testutil.SyncBuffer
	cancel context.CancelFunc
	waited sync.Once
	code   int
}

// startLineProc starts name with args, killed (by PID, through its context) after 30 s or
// when the test ends.
func startLineProc(t testing.TB, name string, args ...string) *lineProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	p := &lineProc{t: t, name: name, cmd: cmd, stderr: &testutil.SyncBuffer{}, cancel: cancel}
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = bufio.NewReader(stdout)
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Logf("$ %s %s (pid %d)", name, strings.Join(args, " "), cmd.Process.Pid)
	t.Cleanup(func() { p.wait() })
	return p
}

// line reads one line of the process's output, without its line end.
func (p *lineProc) line() string {
	p.t.Helper()
	l, err := p.out.ReadString('\n')
	if err != nil {
		p.t.Fatalf("%s: reading its output: %v (got %q)\nstderr: %s", p.name, err, l, p.stderr.String())
	}
	l = strings.TrimRight(l, "\r\n")
	p.t.Logf("%s> %s", p.name, l)
	return l
}

// send writes one line to the process.
func (p *lineProc) send(line string) {
	p.t.Helper()
	p.t.Logf("%s< %s", p.name, line)
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("%s: writing to it: %v", p.name, err)
	}
}

// wait closes its input, reads the rest of its output and waits for it; it returns the exit
// status and the rest of the output.
func (p *lineProc) wait() (code int, rest string) {
	p.in.Close()
	b, _ := io.ReadAll(p.out)
	p.waited.Do(func() {
		p.cmd.Wait()
		p.cancel()
		p.code = p.cmd.ProcessState.ExitCode()
	})
	return p.code, string(b)
}

// startGsaslServer starts `gsasl --server` for mech. Its standard output carries the
// mechanism's name, then one challenge per line (the prompts go to standard error).
func startGsaslServer(t testing.TB, gsasl, mech string, args ...string) *lineProc {
	t.Helper()
	g := startLineProc(t, gsasl, append([]string{"--server", "--mechanism", mech}, args...)...)
	if name := g.line(); name != mech {
		t.Fatalf("gsasl --server announced %q, want %s", name, mech)
	}
	return g
}

// gsaslChallenge reads the next challenge of `gsasl --server`.
func gsaslChallenge(p *lineProc) string {
	p.t.Helper()
	return p.line()
}

// gsaslTrusted finishes a `gsasl --server` run and fails the test unless the server trusted
// the client (want) or refused it (!want).
func gsaslTrusted(t testing.TB, p *lineProc, want bool) {
	t.Helper()
	code, rest := p.wait()
	t.Logf("gsasl> %s\nstderr: %s", rest, p.stderr.String())
	trusted := code == 0 && strings.Contains(p.stderr.String(), "Server authentication finished (client trusted)")
	if trusted != want {
		t.Fatalf("gsasl --server: status %d, trusted %v, want %v:\n%s\n%s", code, trusted, want, rest, p.stderr.String())
	}
}

// TestAuthToolGsaslServer checks tern auth's strings against another implementation's server
// half: GNU gsasl --server, which verifies CRAM-MD5, DIGEST-MD5 and SCRAM itself (with the
// password given to it), right and wrong password.
func TestAuthToolGsaslServer(t *testing.T) {
	t.Parallel()
	gsasl := needTool(t, "gsasl")
	const user, pw = "kenneth.burgener", "ImBB1999!"
	for _, right := range []bool{true, false} {
		clientPW := pw
		name := "right"
		if !right {
			clientPW, name = "ImBB1999?", "wrong"
		}
		t.Run("CRAM-MD5/"+name, func(t *testing.T) {
			t.Parallel()
			g := startGsaslServer(t, gsasl, "CRAM-MD5", "--password", pw)
			g.send(authToolOK(t, "", "cram-md5", user, clientPW, gsaslChallenge(g))[0])
			if right {
				gsaslChallenge(g) // gsasl's empty last step
				g.send("")
			}
			gsaslTrusted(t, g, right)
		})
		t.Run("DIGEST-MD5/"+name, func(t *testing.T) {
			t.Parallel()
			g := startGsaslServer(t, gsasl, "DIGEST-MD5", "--password", pw,
				"--realm", "example.test", "--service", "smtp", "--hostname", "mx.example.test")
			lines := authToolOK(t, "", "digest-md5", "--host", "mx.example.test", user, clientPW, gsaslChallenge(g))
			g.send(lines[0])
			if right {
				if got := gsaslChallenge(g); got != lines[1] {
					t.Errorf("gsasl's rspauth %q (%q), tern auth said %q", got, unb64(t, got), lines[1])
				}
				g.send("")
			}
			gsaslTrusted(t, g, right)
		})
		t.Run("SCRAM-SHA-256/"+name, func(t *testing.T) {
			t.Parallel()
			g := startGsaslServer(t, gsasl, "SCRAM-SHA-256", "--password", pw)
			a := startLineProc(t, ternBin, "auth", "scram-sha-256", user)
			a.send(clientPW)
			gsaslChallenge(g) // empty: no initial response on this channel
			g.send(a.line())  // client-first
			a.send(gsaslChallenge(g))
			g.send(a.line()) // client-final
			if right {
				a.send(gsaslChallenge(g)) // server-final: tern auth verifies it
				g.send(a.line())          // the empty response
				if code, _ := a.wait(); code != 0 {
					t.Fatalf("tern auth: status %d: %s", code, a.stderr.String())
				}
			}
			gsaslTrusted(t, g, right)
		})
	}
}

// TestAuthToolLive runs each mechanism tern serves over a raw socket to a running tern, with
// `tern auth` computing every client line from the server's: 235 for the right password.
func TestAuthToolLive(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t) // --auth-mechanisms all, the seeds' account with every secret
	const user, pw = seedUser, seedPassword
	login := func(t *testing.T) *dialog {
		t.Helper()
		return ehlod(t, tn.Submission, false) // loopback: AUTH without TLS
	}
	challengeOf := func(line string) string { return strings.TrimPrefix(line, "334 ") }

	t.Run("PLAIN", func(t *testing.T) {
		t.Parallel()
		d := login(t)
		d.cmd("AUTH PLAIN "+authToolOK(t, "", "plain", user, pw)[0], authOKRE)
	})
	t.Run("LOGIN", func(t *testing.T) {
		t.Parallel()
		lines := authToolOK(t, pw+"\n", "login", user)
		d := login(t)
		d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
		d.cmd(lines[0], `334 UGFzc3dvcmQ6`)
		d.cmd(lines[1], authOKRE)
	})
	for _, mech := range []string{"CRAM-MD5", "CRAM-SHA1"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			d := login(t)
			ch := d.cmd("AUTH "+mech, `334 \S+`)
			// The whole 334 line, as copied from a terminal, is fine.
			d.cmd(authToolOK(t, "", strings.ToLower(mech), user, pw, ch)[0], authOKRE)
		})
		t.Run(mech+" wrong password", func(t *testing.T) {
			t.Parallel()
			d := login(t)
			ch := challengeOf(d.cmd("AUTH "+mech, `334 \S+`))
			d.cmd(authToolOK(t, "", mech, user, seedWrong, ch)[0], authFailedRE)
		})
	}
	for _, host := range []string{"--host=" + testHostname, ""} {
		t.Run("DIGEST-MD5 "+host, func(t *testing.T) {
			t.Parallel()
			d := login(t)
			ch := challengeOf(d.cmd("AUTH DIGEST-MD5", `334 \S+`))
			args := []string{"digest-md5", user, pw, ch}
			if host != "" {
				args = append(args, host)
			} // else the host is the realm tern offers, which it accepts too
			lines := authToolOK(t, "", args...)
			d.cmd(lines[0], "334 "+regexp.QuoteMeta(lines[1])) // the rspauth tern auth predicted
			d.cmd("", authOKRE)
		})
	}
	t.Run("NTLM", func(t *testing.T) {
		t.Parallel()
		d := login(t)
		d.cmd("AUTH NTLM", `334 `)
		type2 := challengeOf(d.cmd(authToolOK(t, "", "ntlm", user)[0], `334 \S+`))
		out := strings.Join(authToolOK(t, "", "decode", type2), "\n")
		mustMatch(t, "decode of tern's type 2", out, `NTLM CHALLENGE_MESSAGE \(type 2`)
		d.cmd(authToolOK(t, "", "ntlm", user, pw, "", type2)[0], authOKRE)
	})
	t.Run("NTLM initial response, password on stdin", func(t *testing.T) {
		t.Parallel()
		d := login(t)
		type2 := challengeOf(d.cmd("AUTH NTLM "+authToolOK(t, "", "ntlm", user)[0], `334 \S+`))
		d.cmd(authToolOK(t, pw+"\n", "ntlm", user, type2)[0], authOKRE)
	})
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			d := login(t)
			a := startLineProc(t, ternBin, "auth", strings.ToLower(mech), user)
			a.send(pw) // the password, first line of stdin
			a.send(d.cmd("AUTH "+mech+" "+a.line(), `334 \S+`))
			a.send(d.cmd(a.line(), `334 \S+`)) // server-final: tern auth verifies it
			d.cmd(a.line(), authOKRE)          // the empty response
			if code, _ := a.wait(); code != 0 {
				t.Fatalf("tern auth: status %d: %s", code, a.stderr.String())
			}
			mustMatch(t, "tern auth's stderr", a.stderr.String(), `\Athe server's signature verified: it knows the password \(or its stored keys\)`)
		})
	}
	t.Run("SCRAM-SHA-256 wrong password", func(t *testing.T) {
		t.Parallel()
		d := login(t)
		a := startLineProc(t, ternBin, "auth", "scram-sha-256", user, seedWrong)
		a.send(d.cmd("AUTH SCRAM-SHA-256 "+a.line(), `334 \S+`))
		d.cmd(a.line(), authFailedRE)
	})
}
