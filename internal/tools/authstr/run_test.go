package authstr

import (
	"errors"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

// runCmd runs `tern auth ARGS...` with stdin, and a fake terminal answering term when it is not
// nil; it returns standard output and error.
func runCmd(t *testing.T, stdin string, term []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	c, err := Lookup(args[0])
	if err != nil {
		return "", "", err
	}
	var f Flags
	var pos []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; a {
		case "--nonce":
			i++
			f.Nonce = args[i]
		case "--explain":
			f.Explain = true
		default:
			pos = append(pos, a)
		}
	}
	var tm secretin.Terminal
	if term != nil {
		tm = func() ([]byte, error) {
			if len(term) == 0 {
				return nil, io.EOF
			}
			s := term[0]
			term = term[1:]
			return []byte(s), nil
		}
	}
	var out, errOut strings.Builder
	err = Run(c, f, pos, IO{In: secretin.NewWithTerminal(strings.NewReader(stdin), &errOut, tm), Out: &out, Err: &errOut})
	return out.String(), errOut.String(), err
}

// RFC 5802 §5's exchange, the server's lines as typed on standard input.
const (
	rfc5802Nonce       = "fyko+d2lbbFgONRv9qkxdawL"
	rfc5802ServerFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
	rfc5802ServerFinal = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
)

// TestRunExchange: the SCRAM loop as a transcript. S: is what the user pastes on standard
// input (the server's 334 lines), C: each line tern auth prints to send, E: standard error.
func TestRunExchange(t *testing.T) {
	clientFirst := b64s("n,,n=user,r=" + rfc5802Nonce)
	clientFinal := b64s("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
	for _, tc := range []struct {
		name  string
		args  []string
		term  []string // a fake terminal's answers; nil: standard input is a pipe
		stdin []string // S: lines
		out   []string // C: lines; "*" for any
		err   string   // a regexp; "" for success
		usage bool     // the error is a *UsageError
		// stderr must match; verified says whether the Verified line is there.
		stderr   string
		verified bool
	}{
		{name: "RFC 5802, raw server lines", args: []string{"scram-sha-1", "user", "pencil"},
			stdin: []string{rfc5802ServerFirst, rfc5802ServerFinal}, out: []string{clientFirst, clientFinal, ""}, verified: true},
		{name: "334 and base64, CRLF", args: []string{"SCRAM-SHA-1", "user", "pencil"},
			stdin: []string{"334 " + b64s(rfc5802ServerFirst) + "\r", "334 " + b64s(rfc5802ServerFinal) + "\r"},
			out:   []string{clientFirst, clientFinal, ""}, verified: true},
		{name: "password on the first line", args: []string{"scram-sha-1", "user"},
			stdin: []string{"pencil", rfc5802ServerFirst, rfc5802ServerFinal}, out: []string{clientFirst, clientFinal, ""}, verified: true},
		{name: "terminal: password without echo, prompts", args: []string{"scram-sha-1", "user"}, term: []string{"pencil"},
			stdin: []string{rfc5802ServerFirst, rfc5802ServerFinal}, out: []string{clientFirst, clientFinal, ""}, verified: true,
			stderr: `^Password: \nserver-first-message \(the server's 334 line\): server-final-message \(the server's 334 line\): the server's signature verified`},
		{name: "wrong password: the signature does not verify", args: []string{"scram-sha-1", "user", "wrong"},
			stdin: []string{rfc5802ServerFirst, rfc5802ServerFinal}, out: []string{clientFirst, "*"},
			err: `^the server's signature did not verify: the server did not prove`},
		{name: "the server refuses", args: []string{"scram-sha-1", "user", "wrong"},
			stdin: []string{rfc5802ServerFirst, "e=invalid-proof"}, out: []string{clientFirst, "*"}, err: `^the server refused: e=invalid-proof`},
		{name: "standard input ends early", args: []string{"scram-sha-1", "user", "pencil"},
			stdin: []string{rfc5802ServerFirst}, out: []string{clientFirst, clientFinal}, err: `standard input ended before the server-final-message`},
		{name: "not a SCRAM message", args: []string{"scram-sha-1", "user", "pencil"},
			stdin: []string{b64s("hello")}, out: []string{clientFirst}, err: `server-first-message: "hello" is not a SCRAM message`},
		{name: "no password", args: []string{"scram-sha-256", "user"}, err: `^no password: give it as an argument`, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Join(tc.stdin, "\n")
			if in != "" {
				in += "\n"
			}
			args := append(append([]string{}, tc.args...), "--nonce", rfc5802Nonce)
			out, errOut, err := runCmd(t, in, tc.term, args...)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v\nstderr: %s", err, errOut)
			case tc.err != "" && (err == nil || !regexp.MustCompile(tc.err).MatchString(err.Error())):
				t.Fatalf("error %v, want /%s/", err, tc.err)
			}
			var ue *UsageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error: %v, want %v", !tc.usage, tc.usage)
			}
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				got = nil
			}
			if len(got) != len(tc.out) {
				t.Fatalf("C: %q\nwant %q", got, tc.out)
			}
			for i, w := range tc.out {
				if w == "*" {
					continue // any line: a proof from a wrong password
				}
				if got[i] != w {
					t.Errorf("C: line %d %q, want %q", i+1, got[i], w)
				}
			}
			if strings.Contains(errOut, Verified) != tc.verified {
				t.Errorf("stderr %q: verified %v, want %v", errOut, !tc.verified, tc.verified)
			}
			if tc.stderr != "" && !regexp.MustCompile(tc.stderr).MatchString(errOut) {
				t.Errorf("stderr %q, want /%s/", errOut, tc.stderr)
			}
			if strings.Contains(out+errOut, "pencil") {
				t.Errorf("the password shows: %q %q", out, errOut)
			}
		})
	}
}

// fakeExchange answers each server line with "re:LINE" until it has seen want lines; a line
// "fail" is refused.
type fakeExchange struct {
	want, seen int
}

func (x *fakeExchange) First() (Output, error) { return Output{Lines: []string{"first"}}, nil }
func (x *fakeExchange) Done() bool             { return x.seen == x.want }
func (x *fakeExchange) Want() string           { return "message " + string(rune('1'+x.seen)) }
func (x *fakeExchange) Next(line string) (Output, error) {
	x.seen++
	if line == "fail" {
		return Output{}, errors.New("refused")
	}
	return Output{Lines: []string{"re:" + line}}, nil
}

// TestConverse: the loop GSSAPI and SCRAM share, with any number of server messages.
func TestConverse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  int
		stdin string
		out   string
		err   string
	}{
		{"no server message", 0, "ignored\n", "first\n", ""},
		{"two, as GSSAPI", 2, "ap-rep\nlayers\n", "first\nre:ap-rep\nre:layers\n", ""},
		{"the last without line end", 2, "ap-rep\nlayers", "first\nre:ap-rep\nre:layers\n", ""},
		{"an empty line is a message", 1, "\n", "first\nre:\n", ""},
		{"ends early", 2, "ap-rep\n", "first\nre:ap-rep\n", "standard input ended before the message 2"},
		{"refused", 2, "fail\nlayers\n", "first\n", "refused"},
		{"line too long", 1, strings.Repeat("x", secretin.MaxLine+1), "first\n", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			r := &runner{IO: IO{In: secretin.NewWithTerminal(strings.NewReader(tc.stdin), io.Discard, nil), Out: &out, Err: io.Discard}}
			err := r.converse(&fakeExchange{want: tc.want})
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if out.String() != tc.out {
				t.Errorf("stdout %q, want %q", out.String(), tc.out)
			}
		})
	}
}

// TestNTLMArgs: which argument of USER [PASS] [DOMAIN] [CHALLENGE] is the challenge.
func TestNTLMArgs(t *testing.T) {
	type2 := msnlmpChallengeB64(t)
	type1 := b64s("NTLMSSP\x00\x01\x00\x00\x00\x07\x82\x08\xa2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	for _, tc := range []struct {
		name      string
		args      []string
		rest      []string
		challenge string
	}{
		{"user: type 1", []string{"bob"}, []string{"bob"}, ""},
		{"a type 2 alone", []string{type2}, []string{type2}, ""}, // the user's name, however odd
		{"user, password: type 1", []string{"bob", "secret"}, []string{"bob", "secret"}, ""},
		{"user, type 2 (password from stdin)", []string{"bob", type2}, []string{"bob"}, type2},
		{"user, type 2 with 334", []string{"bob", "334 " + type2}, []string{"bob"}, "334 " + type2},
		{"user, password, type 2", []string{"bob", "secret", type2}, []string{"bob", "secret"}, type2},
		{"user, password, domain", []string{"bob", "secret", "CORP"}, []string{"bob", "secret", "CORP"}, ""},
		{"a type 1 is no challenge", []string{"bob", "secret", type1}, []string{"bob", "secret", type1}, ""},
		{"four: the last, whatever it is", []string{"bob", "secret", "", "garbage"}, []string{"bob", "secret", ""}, "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, challenge := ntlmArgs(tc.args)
			if challenge != tc.challenge || strings.Join(rest, "|") != strings.Join(tc.rest, "|") {
				t.Errorf("ntlmArgs(%q) = %q, %q; want %q, %q", tc.args, rest, challenge, tc.rest, tc.challenge)
			}
		})
	}
}

// TestRunArgs: how each command slices its arguments, and what is a usage error.
func TestRunArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		out   string // stdout; "" when err
		err   string
		usage bool
	}{
		{"cram: USER PASS CHALLENGE", "", []string{"cram-md5", "postmaster@example.com", "pass", seedCRAMChallenge}, seedCRAMResponse + "\n", "", false},
		{"cram: USER CHALLENGE, password on stdin", "pass\n", []string{"CRAM-MD5", "postmaster@example.com", seedCRAMChallenge}, seedCRAMResponse + "\n", "", false},
		{"cram: too few", "", []string{"cram-md5", "u"}, "", `want USER \[PASS\] CHALLENGE, got 1 argument`, true},
		{"plain: too many", "", []string{"plain", "a", "b", "c"}, "", `got 3 argument`, true},
		{"plain: password on stdin", "ImBB1999!\n", []string{"plain", "kenneth.burgener"}, seedPlain + "\n", "", false},
		{"plain: no password", "", []string{"plain", "u"}, "", `no password`, true},
		{"xoauth2: no token", "", []string{"xoauth2", "u"}, "", `no token`, true},
		{"login: two lines", "", []string{"login", "kenneth.burgener", "ImBB1999!"}, seedLoginUser + "\n" + seedLoginPass + "\n", "", false},
		{"ntlm alias spa: type 1 needs no password", "", []string{"spa", "bob"}, "", "", false},
		{"encode: stdin", "kenneth.burgener", []string{"encode"}, seedLoginUser + "\n", "", false},
		{"encode: stdin too long", strings.Repeat("x", secretin.MaxLine+1), []string{"encode"}, "", "longer than", false},
		{"decode: lines of stdin", seedLoginUser + "\n\n" + seedLoginPass + "\n", []string{"decode"}, "kenneth.burgener\n", "", false},
		{"decode: not base64", "", []string{"decode", "a!b"}, "", "not base64", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCmd(t, tc.stdin, nil, tc.args...)
			if (err == nil) != (tc.err == "") || (err != nil && !regexp.MustCompile(tc.err).MatchString(err.Error())) {
				t.Fatalf("error %v, want /%s/", err, tc.err)
			}
			var ue *UsageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error %v, want %v", !tc.usage, tc.usage)
			}
			if tc.out != "" && !strings.HasPrefix(out, tc.out) {
				t.Errorf("stdout %q, want %q", out, tc.out)
			}
		})
	}
}

// TestLookup: names in any case, gen-auth's aliases, and the two refusals.
func TestLookup(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "CRAM-MD5": "cram-md5", "Scram-Sha-256": "scram-sha-256", "SPA": "ntlm", "msn": "ntlm", "decode": "decode"} {
		if c, err := Lookup(in); err != nil || c.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, c.Name, err, want)
		}
	}
	for in, want := range map[string]string{"SCRAM-SHA-256-PLUS": "TLS connection", "kerberos_v4": `unknown mechanism "kerberos_v4"`} {
		if _, err := Lookup(in); errors.Is(err, ErrChannelBinding) != strings.HasSuffix(in, "-PLUS") {
			t.Errorf("Lookup(%q): %v; errors.Is ErrChannelBinding wrong", in, err)
		}
		_, err := Lookup(in)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup(%q): %v, want a usage error with %q", in, err, want)
		}
	}
}

// TestCommands: the table is the one list: every mechanism tern has a client half for, each
// with its example, in the help.
func TestCommands(t *testing.T) {
	help := Help()
	seen := map[string]bool{}
	for _, c := range Commands() {
		if c.Min > c.Max || c.run == nil || c.Short == "" || !strings.HasPrefix(c.Example, "tern auth "+c.Name) {
			t.Errorf("%s: %+v", c.Name, c)
		}
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.Name) + `\b.*\n      tern auth ` + regexp.QuoteMeta(c.Name)).MatchString(help) {
			t.Errorf("the help has no entry for %s:\n%s", c.Name, help)
		}
		seen[c.Mech] = true
		var f Flags
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		f.Bind(fs, c)
		for _, n := range append([]string{"explain", "show-secrets"}, c.Flags...) {
			if fs.Lookup(n) == nil || fs.Lookup(n).Usage == "" {
				t.Errorf("%s: Bind defines no --%s", c.Name, n)
			}
		}
	}
	for _, m := range sasl.Mechanisms() {
		// The -PLUS ones need the TLS connection tern auth does not have (Lookup says so).
		if !seen[m.Name] && !m.Plus {
			t.Errorf("no command for %s", m.Name)
		}
		delete(seen, m.Name)
	}
	delete(seen, "") // encode, decode
	if len(seen) > 0 {
		t.Errorf("commands for mechanisms sasl does not have: %v", seen)
	}
}
