package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/tern-mail/tern/internal/krb5"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tools/authstr"
)

const authHelp = `usage: tern auth MECH [flags] ARGS...    make SMTP AUTH strings by hand, like gen-auth

Prints the base64 line(s) to send to the server, one per line, and nothing else; --explain
adds annotated "## " lines on standard error. A missing PASS or TOKEN is read from the
terminal without echo, or from the first line of standard input. Mechanism names are
case-insensitive; flags may come before or after the arguments ("--" ends the flags).
A CHALLENGE is what the server sent after "334 " (the "334 " may be copied along).

  plain USER [PASS] [--authzid Z]
      tern auth plain kenneth.burgener 'ImBB1999!'
  login USER [PASS]                                 (two lines: user name, password)
      tern auth login kenneth.burgener 'ImBB1999!'
  cram-md5 | cram-sha1 USER [PASS] CHALLENGE        (CHALLENGE base64, or raw text starting with '<')
      tern auth cram-md5 postmaster@example.com pass PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg==
  digest-md5 USER [PASS] CHALLENGE [--host H] [--realm R] [--service S] [--authzid Z] [--cnonce C]
      tern auth digest-md5 --host mx.example.com bob secret cmVhbG09ImV4YW1wbGUuY29tIixub25jZT0iYWJjIixhbGdvcml0aG09bWQ1LXNlc3M=
      (two lines: the response, and the rspauth line the server must send back)
  scram-sha-1 | scram-sha-256 USER [PASS] [--authzid Z] [--nonce N]
      tern auth scram-sha-256 bob     (prints client-first; paste each 334 line the server sends)
  gssapi HOST [--service S] [--keytab F --principal P] [--authzid Z]
      tern auth gssapi mx.example.com   (Kerberos: the ticket from kinit; prints the AP-REQ, then
                                         paste each 334 line: the AP-REP, the security layer offer)
  ntlm USER [PASS] [DOMAIN] [CHALLENGE] [--workstation W]
      tern auth ntlm bob                                (type 1, to send first)
      tern auth ntlm bob secret '' TlRMTVNTUAACAAAA...  (type 3, from the server's type 2)
  xoauth2 USER [TOKEN]
      tern auth xoauth2 bob@gmail.com ya29.a0AfB_byC
  oauthbearer USER [TOKEN] [--host H] [--port P]
      tern auth oauthbearer --host smtp.gmail.com --port 587 bob@gmail.com ya29.a0AfB_byC
  encode [STRING] [--escapes]                        (without STRING: all of standard input)
      tern auth encode --escapes '\0bob\0secret'
  decode [BASE64...]                                 (without BASE64: each line of standard input)
      tern auth decode AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh

Flags of every mechanism: --explain (annotate on standard error), --show-secrets (show
passwords and tokens in annotations and in decode). "tern auth MECH -h" lists a mechanism's flags.
`

// authCmd is one `tern auth` subcommand.
type authCmd struct {
	short    string   // what it makes
	args     string   // the synopsis of the arguments
	min, max int      // how many arguments it takes
	flags    []string // the flags it takes besides --explain and --show-secrets
	run      func(a *authRun) error
}

// authCommands are the subcommands by lower-case name (gen-auth's NTLM aliases included).
var authCommands = map[string]*authCmd{
	"plain":         {"PLAIN's initial response", "USER [PASS]", 1, 2, []string{"authzid"}, authPlain},
	"login":         {"LOGIN's two answers", "USER [PASS]", 1, 2, nil, authLogin},
	"cram-md5":      {"the answer to a CRAM-MD5 challenge", "USER [PASS] CHALLENGE", 2, 3, nil, authCRAM(sasl.CRAMMD5)},
	"cram-sha1":     {"the answer to a CRAM-SHA1 challenge", "USER [PASS] CHALLENGE", 2, 3, nil, authCRAM(sasl.CRAMSHA1)},
	"digest-md5":    {"the answer to a DIGEST-MD5 challenge", "USER [PASS] CHALLENGE", 2, 3, []string{"host", "realm", "service", "authzid", "cnonce"}, authDigest},
	"scram-sha-1":   {"a SCRAM-SHA-1 exchange, with the server's lines pasted in", "USER [PASS]", 1, 2, []string{"authzid", "nonce"}, authScram(sasl.ScramSHA1)},
	"scram-sha-256": {"a SCRAM-SHA-256 exchange, with the server's lines pasted in", "USER [PASS]", 1, 2, []string{"authzid", "nonce"}, authScram(sasl.ScramSHA256)},
	"gssapi":        {"a Kerberos GSSAPI exchange, with the server's lines pasted in", "HOST", 1, 1, []string{"service", "keytab", "principal", "authzid"}, authGSSAPI},
	"ntlm":          {"NTLM's type 1 message, or type 3 from the server's type 2", "USER [PASS] [DOMAIN] [CHALLENGE]", 1, 4, []string{"workstation", "client-challenge", "timestamp"}, authNTLM},
	"spa":           {"NTLM (gen-auth's name)", "USER [PASS] [DOMAIN] [CHALLENGE]", 1, 4, []string{"workstation", "client-challenge", "timestamp"}, authNTLM},
	"msn":           {"NTLM (gen-auth's name)", "USER [PASS] [DOMAIN] [CHALLENGE]", 1, 4, []string{"workstation", "client-challenge", "timestamp"}, authNTLM},
	"xoauth2":       {"XOAUTH2's initial response", "USER [TOKEN]", 1, 2, nil, authXOAuth2},
	"oauthbearer":   {"OAUTHBEARER's initial response", "USER [TOKEN]", 1, 2, []string{"host", "port"}, authOAuthBearer},
	"encode":        {"base64 of a string", "[STRING]", 0, 1, []string{"escapes"}, authEncode},
	"decode":        {"what base64 strings say", "[BASE64...]", 0, 1000, nil, authDecode},
}

// authFlags are the values of every flag a subcommand may take.
type authFlags struct {
	explain, showSecrets, escapes                                    bool
	authzid, realm, service, host, cnonce, nonce, workstation, chall string
	keytab, principal                                                string
	timestamp                                                        uint64
	port                                                             int
	timestampSet                                                     bool
}

func (f *authFlags) register(fs *pflag.FlagSet, mech string, names []string) {
	fs.BoolVar(&f.explain, "explain", false, "annotate each line on standard error: what each field is, the decoded challenge, the digest inputs")
	fs.BoolVar(&f.showSecrets, "show-secrets", false, "show passwords and tokens in annotations and in decode (masked as *** by default)")
	for _, n := range names {
		switch n {
		case "authzid":
			fs.StringVar(&f.authzid, n, "", "authorization identity: the user to act as (default: none, act as USER)")
		case "host":
			def := "left out"
			if mech == "digest-md5" {
				def = "the realm" // the host of digest-uri, as curl makes it
			}
			fs.StringVar(&f.host, n, "", "the server's host name, as the client connected to it (default: "+def+")")
		case "realm":
			fs.StringVar(&f.realm, n, "", "the realm to log in to (default: the first one the server offers)")
		case "service":
			if mech == "gssapi" {
				fs.StringVar(&f.service, n, "smtp", "the service of the server's principal, service/HOST")
				break
			}
			fs.StringVar(&f.service, n, "smtp", "the service of digest-uri (RFC 2831's example uses imap)")
		case "keytab":
			fs.StringVar(&f.keytab, n, "", "log in with this keytab (with --principal) instead of the credential cache ($KRB5CCNAME)")
		case "principal":
			fs.StringVar(&f.principal, n, "", "the client principal in --keytab, name or name@REALM")
		case "cnonce":
			fs.StringVar(&f.cnonce, n, "", "the client nonce, for reproducible output (default: 32 random octets in base64)")
		case "nonce":
			fs.StringVar(&f.nonce, n, "", "the client nonce, for reproducible output (default: random)")
		case "workstation":
			fs.StringVar(&f.workstation, n, "", "the workstation name of the type 3 message (default: none)")
		case "client-challenge":
			fs.StringVar(&f.chall, n, "", "the NTLMv2 client challenge, 16 hex digits: for reproducing test vectors only (default: random)")
		case "timestamp":
			fs.Func(n, "the NTLMv2 blob's time as a FILETIME (100 ns units since 1601), used when the server's type 2 has none: for test vectors (default: now)", func(s string) error {
				_, err := fmt.Sscan(s, &f.timestamp)
				f.timestampSet = true
				return err
			})
		case "port":
			fs.IntVar(&f.port, n, 0, "the server's port (default: left out)")
		case "escapes":
			fs.BoolVar(&f.escapes, n, false, `read \0 \\ \t \r \n \xHH \uHHHH in STRING, as decode writes them`)
		}
	}
}

// authRun is one run of a subcommand.
type authRun struct {
	name   string
	cmd    *authCmd
	f      authFlags
	args   []string
	in     *bufio.Reader // over stdin: a password on its first line, then SCRAM's server lines
	tty    *os.File      // stdin, when it is a terminal
	stdout io.Writer
	stderr io.Writer
}

// newAuthCmd is tern auth: see internal/tools/authstr. Each mechanism is a subcommand, with
// the flags it takes.
func newAuthCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth MECH [flags] ARGS...",
		Short: "make SMTP AUTH strings by hand, like gen-auth",
		Long:  strings.SplitN(authHelp, "\n\n", 2)[1],
		Args:  cobra.ArbitraryArgs,
		// cobra finds the lower-case names; this command gets the others, flags and all.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return authUsage("", nil, "missing MECH")
			}
			switch name := strings.ToLower(args[0]); name {
			case "help", "-h", "--help":
				return cmd.Help()
			case "scram-sha-1-plus", "scram-sha-256-plus":
				return fmt.Errorf("%w: tern auth %s: %v\n  (tern auth -h lists the mechanisms)", errUsage, name, strings.TrimPrefix(authstr.ErrChannelBinding.Error(), "authstr: "))
			}
			for _, sub := range cmd.Commands() {
				if sub.Name() == strings.ToLower(args[0]) {
					return runSub(sub, args[1:])
				}
			}
			return authUsage("", nil, fmt.Sprintf("unknown mechanism %q", args[0]))
		},
	}
	names := make([]string, 0, len(authCommands))
	for name := range authCommands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cmd.AddCommand(newAuthMechCmd(std, name, authCommands[name]))
	}
	return cmd
}

// newAuthMechCmd is tern auth MECH.
func newAuthMechCmd(std stdio, name string, ac *authCmd) *cobra.Command {
	a := &authRun{name: name, cmd: ac, stdout: std.out, stderr: std.err}
	cmd := &cobra.Command{
		Use:    name + " " + ac.args,
		Short:  ac.short,
		Hidden: name == "spa" || name == "msn", // gen-auth's names for NTLM
		Args: func(cmd *cobra.Command, pos []string) error {
			if len(pos) < ac.min || len(pos) > ac.max {
				return authUsage(name, ac, fmt.Sprintf("want %s, got %d argument(s)", ac.args, len(pos)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, pos []string) error {
			a.args = pos
			a.in = bufio.NewReader(std.in)
			if f, ok := std.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				a.tty = f
			}
			return ac.run(a)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return authUsage(name, ac, err.Error()) })
	a.f.register(cmd.Flags(), name, ac.flags)
	return cmd
}

// runSub runs the subcommand sub with args, as cobra would have: for a mechanism name not in
// lower case.
func runSub(sub *cobra.Command, args []string) error {
	sub.InitDefaultHelpFlag()
	if err := sub.ParseFlags(args); err != nil {
		return sub.FlagErrorFunc()(sub, err)
	}
	if help, _ := sub.Flags().GetBool("help"); help {
		return sub.Help()
	}
	pos := sub.Flags().Args()
	if err := sub.ValidateArgs(pos); err != nil {
		return err
	}
	return sub.RunE(sub, pos)
}

// authMechs lists the subcommands for a usage error.
const authMechs = "plain login cram-md5 cram-sha1 digest-md5 scram-sha-1 scram-sha-256 gssapi ntlm xoauth2 oauthbearer encode decode"

// authUsage is a usage error with the short usage of the subcommand (cmd nil: of tern auth).
func authUsage(name string, cmd *authCmd, msg string) error {
	if cmd != nil {
		return fmt.Errorf("%w: tern auth %s: %s\n  tern auth %s [flags] %s\n  (tern auth %s -h lists its flags; tern auth -h every mechanism)",
			errUsage, name, msg, name, cmd.args, name)
	}
	return fmt.Errorf("%w: tern auth: %s\n  tern auth MECH [flags] ARGS...   MECH: %s\n  (tern auth -h shows an example of each)",
		errUsage, msg, authMechs)
}

func (a *authRun) opts() authstr.Options { return authstr.Options{ShowSecrets: a.f.showSecrets} }

// emit prints the lines on standard output and, with --explain, the annotations on standard
// error.
func (a *authRun) emit(out authstr.Output) error {
	if a.f.explain {
		if _, err := io.WriteString(a.stderr, authstr.FormatExplain(out.Explain)); err != nil {
			return err
		}
	}
	for _, l := range out.Lines {
		if _, err := fmt.Fprintln(a.stdout, l); err != nil {
			return err
		}
	}
	return nil
}

// maxAuthLine bounds a line read from standard input (a password, a server message).
const maxAuthLine = 64 << 10

// readLine reads one line of standard input, without its line end.
func (a *authRun) readLine() (string, error) {
	var line []byte
	for {
		chunk, err := a.in.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAuthLine {
			return "", fmt.Errorf("a line of standard input is longer than %d octets", maxAuthLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = nil
		}
		return strings.TrimRight(string(line), "\r\n"), err
	}
}

// secret returns argument i, or reads the missing password or token: from the terminal
// without echo, or from the first line of standard input.
func (a *authRun) secret(i int, what string) (string, error) {
	if i < len(a.args) {
		return a.args[i], nil
	}
	if a.tty != nil {
		fmt.Fprintf(a.stderr, "%s: ", what)
		b, err := term.ReadPassword(int(a.tty.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the %s from the terminal: %w", strings.ToLower(what), err)
		}
		return string(b), nil
	}
	s, err := a.readLine()
	if errors.Is(err, io.EOF) {
		return "", authUsage(a.name, a.cmd, fmt.Sprintf("no %s: give it as an argument, or on the first line of standard input", strings.ToLower(what)))
	}
	return s, err
}

func authPlain(a *authRun) error {
	pw, err := a.secret(1, "Password")
	if err != nil {
		return err
	}
	out, err := authstr.Plain(a.f.authzid, a.args[0], pw, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

func authLogin(a *authRun) error {
	pw, err := a.secret(1, "Password")
	if err != nil {
		return err
	}
	out, err := authstr.Login(a.args[0], pw, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

// userPassChallenge splits USER [PASS] CHALLENGE.
func (a *authRun) userPassChallenge() (user, pw, challenge string, err error) {
	user, challenge = a.args[0], a.args[len(a.args)-1]
	a.args = a.args[:len(a.args)-1]
	pw, err = a.secret(1, "Password")
	return user, pw, challenge, err
}

func authCRAM(mech string) func(a *authRun) error {
	return func(a *authRun) error {
		user, pw, challenge, err := a.userPassChallenge()
		if err != nil {
			return err
		}
		out, err := authstr.CRAM(mech, user, pw, challenge, a.opts())
		if err != nil {
			return err
		}
		return a.emit(out)
	}
}

func authDigest(a *authRun) error {
	user, pw, challenge, err := a.userPassChallenge()
	if err != nil {
		return err
	}
	out, err := authstr.DigestMD5(challenge, sasl.DigestMD5Params{
		User: user, Password: pw, Authzid: a.f.authzid, Realm: a.f.realm,
		Service: a.f.service, Host: a.f.host, Cnonce: a.f.cnonce,
	}, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

// authScram runs SCRAM interactively: client-first on standard output, then a server line
// from standard input, client-final, another server line, and the empty final response.
func authScram(mech string) func(a *authRun) error {
	return func(a *authRun) error {
		pw, err := a.secret(1, "Password")
		if err != nil {
			return err
		}
		s, err := authstr.NewScram(authstr.ScramParams{
			Mech: mech, Authzid: a.f.authzid, User: a.args[0], Password: pw, Nonce: a.f.nonce,
		}, a.opts())
		if err != nil {
			return err
		}
		if err := a.converse(s); err != nil {
			return err
		}
		if a.tty != nil {
			fmt.Fprintln(a.stderr, "(the server's signature checks out: answer its last 334 with the empty line above)")
		}
		return nil
	}
}

// authGSSAPI runs GSSAPI interactively, like SCRAM: the AP-REQ on standard output, then the
// server's AP-REP from standard input (verified: the answer is an empty line), then its security
// layer offer (the answer is the wrapped choice). The credentials are the credential cache's
// ($KRB5CCNAME, $KRB5_CONFIG), or --keytab and --principal's.
func authGSSAPI(a *authRun) error {
	if (a.f.keytab == "") != (a.f.principal == "") {
		return authUsage(a.name, a.cmd, "--keytab and --principal go together")
	}
	tickets, err := krb5.New(krb5.Options{Keytab: a.f.keytab, Principal: a.f.principal})
	if err != nil {
		return err
	}
	g := authstr.NewGSSAPI(authstr.GSSAPIParams{
		Tickets: tickets, Service: a.f.service, Host: a.args[0], Authzid: a.f.authzid,
	}, a.opts())
	return a.converse(g)
}

// exchange is a mechanism that needs the server's challenges: SCRAM and GSSAPI.
type exchange interface {
	First() (authstr.Output, error)
	Next(line string) (authstr.Output, error)
	Done() bool
	Want() string // what the next line from the server is
}

// converse prints the client's first message, then reads each server message from standard
// input and prints the answer, until the exchange is done.
func (a *authRun) converse(x exchange) error {
	out, err := x.First()
	if err != nil {
		return err
	}
	if err := a.emit(out); err != nil {
		return err
	}
	for !x.Done() {
		if a.tty != nil {
			fmt.Fprintf(a.stderr, "%s (the server's 334 line): ", x.Want())
		}
		line, err := a.readLine()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("standard input ended before the %s", x.Want())
		}
		if err != nil {
			return err
		}
		if out, err = x.Next(line); err != nil {
			return err
		}
		if err := a.emit(out); err != nil {
			return err
		}
	}
	return nil
}

// authNTLM takes USER [PASS] [DOMAIN] [CHALLENGE]: the last argument is the CHALLENGE when
// there are four, or when it is an NTLM type 2 message in base64. Without one, the type 1
// message needs no password.
func authNTLM(a *authRun) error {
	var challenge string
	switch last := a.args[len(a.args)-1]; {
	case len(a.args) == 4:
		challenge = last
	case len(a.args) > 1:
		if _, err := authstr.NTLMChallenge(last); err == nil {
			challenge = last
		}
	}
	if challenge != "" {
		a.args = a.args[:len(a.args)-1]
	}
	p := authstr.NTLMParams{User: a.args[0], Workstation: a.f.workstation}
	if a.f.chall != "" {
		b, err := hex.DecodeString(a.f.chall)
		if err != nil || len(b) != 8 {
			return authUsage(a.name, a.cmd, "--client-challenge wants 16 hex digits")
		}
		p.Fixed.ClientChallenge = b
	}
	if a.f.timestampSet {
		ft := a.f.timestamp
		p.Fixed.Now = func() time.Time { return sasl.NTLMFiletimeTime(ft) }
	}
	if challenge != "" {
		var err error
		if p.Password, err = a.secret(1, "Password"); err != nil {
			return err
		}
		if len(a.args) > 2 {
			p.Domain = a.args[2]
		}
	}
	out, err := authstr.NTLM(p, challenge, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

func authXOAuth2(a *authRun) error {
	token, err := a.secret(1, "Token")
	if err != nil {
		return err
	}
	out, err := authstr.XOAuth2(a.args[0], token, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

func authOAuthBearer(a *authRun) error {
	token, err := a.secret(1, "Token")
	if err != nil {
		return err
	}
	out, err := authstr.OAuthBearer(a.args[0], token, a.f.host, a.f.port, a.opts())
	if err != nil {
		return err
	}
	return a.emit(out)
}

// authEncode encodes STRING, or all of standard input (like base64).
func authEncode(a *authRun) error {
	var b []byte
	if len(a.args) == 1 {
		b = []byte(a.args[0])
	} else {
		var err error
		if b, err = io.ReadAll(io.LimitReader(a.in, maxAuthLine+1)); err != nil {
			return err
		}
		if len(b) > maxAuthLine {
			return fmt.Errorf("standard input is longer than %d octets", maxAuthLine)
		}
	}
	if a.f.escapes {
		var err error
		if b, err = authstr.Unescape(string(b)); err != nil {
			return authUsage(a.name, a.cmd, "--escapes: "+err.Error())
		}
	}
	_, err := fmt.Fprintln(a.stdout, authstr.Encode(b))
	return err
}

// authDecode decodes each BASE64 argument, or each non-empty line of standard input.
func authDecode(a *authRun) error {
	inputs := a.args
	if len(inputs) == 0 {
		for {
			line, err := a.readLine()
			if strings.TrimSpace(line) != "" {
				inputs = append(inputs, line)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
	}
	for i, s := range inputs {
		d, err := authstr.Decode(s, a.opts())
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		if _, err := io.WriteString(a.stdout, authstr.FormatDecode(d)); err != nil {
			return err
		}
	}
	return nil
}
