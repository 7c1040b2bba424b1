package authstr

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/krb5"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tools/secretin"
)

// Flags are the values of every flag of tern auth; a command reads only its own (Command.Flags).
type Flags struct {
	Explain, ShowSecrets, Escapes                             bool
	Authzid, Realm, Service, Host, Cnonce, Nonce, Workstation string
	ClientChallenge, Timestamp, Keytab, Principal             string
	Port                                                      int
}

// FlagSet is what Bind defines flags on: a *flag.FlagSet or a *pflag.FlagSet.
type FlagSet interface {
	BoolVar(p *bool, name string, value bool, usage string)
	StringVar(p *string, name string, value string, usage string)
	IntVar(p *int, name string, value int, usage string)
}

// Bind defines on fs the flags of c, with their help, storing into f.
func (f *Flags) Bind(fs FlagSet, c Command) {
	fs.BoolVar(&f.Explain, "explain", false, "annotate each line on standard error: what each field is, the decoded challenge, the digest inputs")
	fs.BoolVar(&f.ShowSecrets, "show-secrets", false, "show passwords and tokens in annotations and in decode (masked as *** by default)")
	hostDefault, serviceUsage := "left out", "the service of digest-uri (RFC 2831's example uses imap)"
	switch c.Mech {
	case sasl.DigestMD5:
		hostDefault = "the realm" // the host of digest-uri, as curl makes it
	case sasl.GSSAPI:
		serviceUsage = "the service of the server's principal, service/HOST"
	}
	stringFlags := map[string]struct {
		p            *string
		value, usage string
	}{
		"authzid":          {&f.Authzid, "", "authorization identity: the user to act as (default: none, act as USER)"},
		"host":             {&f.Host, "", "the server's host name, as the client connected to it (default: " + hostDefault + ")"},
		"realm":            {&f.Realm, "", "the realm to log in to (default: the first one the server offers)"},
		"service":          {&f.Service, "smtp", serviceUsage},
		"keytab":           {&f.Keytab, "", "log in with this keytab (with --principal) instead of the credential cache ($KRB5CCNAME)"},
		"principal":        {&f.Principal, "", "the client principal in --keytab, name or name@REALM"},
		"cnonce":           {&f.Cnonce, "", "the client nonce, for reproducible output (default: 32 random octets in base64)"},
		"nonce":            {&f.Nonce, "", "the client nonce, for reproducible output (default: random)"},
		"workstation":      {&f.Workstation, "", "the workstation name of the type 3 message (default: none)"},
		"client-challenge": {&f.ClientChallenge, "", "the NTLMv2 client challenge, 16 hex digits: for reproducing test vectors only (default: random)"},
		"timestamp": {&f.Timestamp, "", "the NTLMv2 blob's time as a FILETIME (100 ns units since 1601), used when the server's type 2 " +
			"has none: for test vectors (default: now)"},
	}
	for _, n := range c.Flags {
		switch n {
		case "port":
			fs.IntVar(&f.Port, n, 0, "the server's port (default: left out)")
		case "escapes":
			fs.BoolVar(&f.Escapes, n, false, `read \0 \\ \t \r \n \xHH \uHHHH in STRING, as decode writes them`)
		default:
			sf := stringFlags[n]
			fs.StringVar(sf.p, n, sf.value, sf.usage)
		}
	}
}

// IO is where a run reads and writes.
type IO struct {
	// In is standard input: a missing password or token (from the terminal without echo, or
	// its first line), then the server's lines for SCRAM and GSSAPI.
	In *secretin.Input
	// Out gets the lines to send, and nothing else; Err the annotations, prompts and verdicts.
	Out, Err io.Writer
}

// Run runs c with the arguments as typed. A mistake in them is a *UsageError.
func Run(c Command, f Flags, args []string, rw IO) error {
	if len(args) < c.Min || len(args) > c.Max {
		return usagef("want %s, got %d argument(s)", c.Args, len(args))
	}
	return c.run(&runner{cmd: c, f: f, args: args, IO: rw})
}

// runner is one run of a command.
type runner struct {
	cmd  Command
	f    Flags
	args []string
	IO
}

func (r *runner) opts() Options { return Options{ShowSecrets: r.f.ShowSecrets} }

// emit prints the lines on standard output and, with --explain, the annotations on standard
// error.
func (r *runner) emit(out Output) error {
	if r.f.Explain {
		if _, err := io.WriteString(r.Err, FormatExplain(out.Explain)); err != nil {
			return err
		}
	}
	for _, l := range out.Lines {
		if _, err := fmt.Fprintln(r.Out, l); err != nil {
			return err
		}
	}
	return nil
}

// secret returns argument i, or reads the missing password or token (what: "Password",
// "Token").
func (r *runner) secret(i int, what string) (string, error) {
	if i < len(r.args) {
		return r.args[i], nil
	}
	s, err := r.In.Secret(secretin.Ask{What: what})
	if errors.Is(err, secretin.ErrNoLine) {
		return "", usagef("no %s: give it as an argument, or on the first line of standard input", strings.ToLower(what))
	}
	return s, err
}

// userPassChallenge splits USER [PASS] CHALLENGE: the challenge is always the last argument.
func (r *runner) userPassChallenge() (user, pw, challenge string, err error) {
	user, challenge = r.args[0], r.args[len(r.args)-1]
	r.args = r.args[:len(r.args)-1]
	pw, err = r.secret(1, "Password")
	return user, pw, challenge, err
}

func (r *runner) plain() error {
	pw, err := r.secret(1, "Password")
	if err != nil {
		return err
	}
	return r.emitOrErr(Plain(r.f.Authzid, r.args[0], pw, r.opts()))
}

func (r *runner) login() error {
	pw, err := r.secret(1, "Password")
	if err != nil {
		return err
	}
	return r.emitOrErr(Login(r.args[0], pw, r.opts()))
}

func (r *runner) cram(mech string) error {
	user, pw, challenge, err := r.userPassChallenge()
	if err != nil {
		return err
	}
	return r.emitOrErr(CRAM(mech, user, pw, challenge, r.opts()))
}

func (r *runner) digest() error {
	user, pw, challenge, err := r.userPassChallenge()
	if err != nil {
		return err
	}
	return r.emitOrErr(DigestMD5(challenge, sasl.DigestMD5Params{
		User: user, Password: pw, Authzid: r.f.Authzid, Realm: r.f.Realm,
		Service: r.f.Service, Host: r.f.Host, Cnonce: r.f.Cnonce,
	}, r.opts()))
}

func (r *runner) xoauth2() error {
	token, err := r.secret(1, "Token")
	if err != nil {
		return err
	}
	return r.emitOrErr(XOAuth2(r.args[0], token, r.opts()))
}

func (r *runner) oauthBearer() error {
	token, err := r.secret(1, "Token")
	if err != nil {
		return err
	}
	return r.emitOrErr(OAuthBearer(r.args[0], token, r.f.Host, r.f.Port, r.opts()))
}

func (r *runner) emitOrErr(out Output, err error) error {
	if err != nil {
		return err
	}
	return r.emit(out)
}

// Verified is what tern auth scram-* says on standard error once the server's signature
// checks out: the proof SCRAM gives that the server is not an impostor.
const Verified = "the server's signature verified: it knows the password (or its stored keys); " +
	"answer its last 334 with the empty line printed last"

// scram runs SCRAM: client-first on standard output, then a server line from standard input,
// client-final, another server line (the signature, verified), and the empty final response.
func (r *runner) scram(mech string) error {
	pw, err := r.secret(1, "Password")
	if err != nil {
		return err
	}
	s, err := NewScram(ScramParams{Mech: mech, Authzid: r.f.Authzid, User: r.args[0], Password: pw, Nonce: r.f.Nonce}, r.opts())
	if err != nil {
		return err
	}
	if err := r.converse(s); err != nil {
		return err
	}
	_, err = fmt.Fprintln(r.Err, Verified)
	return err
}

// gssapi runs GSSAPI like SCRAM: the AP-REQ on standard output, then the server's AP-REP from
// standard input (verified: the answer is an empty line), then its security layer offer (the
// answer is the wrapped choice). The credentials are the credential cache's ($KRB5CCNAME,
// $KRB5_CONFIG), or --keytab and --principal's.
func (r *runner) gssapi() error {
	if (r.f.Keytab == "") != (r.f.Principal == "") {
		return usagef("--keytab and --principal go together")
	}
	tickets, err := krb5.New(krb5.Options{Keytab: r.f.Keytab, Principal: r.f.Principal})
	if err != nil {
		return err
	}
	return r.converse(NewGSSAPI(GSSAPIParams{Tickets: tickets, Service: r.f.Service, Host: r.args[0], Authzid: r.f.Authzid}, r.opts()))
}

// Exchange is a mechanism that needs the server's challenges: Scram and GSSAPI.
type Exchange interface {
	First() (Output, error)
	Next(line string) (Output, error)
	Done() bool
	Want() string // what the next line from the server is
}

// converse prints the client's first message, then reads each server message from standard
// input and prints the answer, until the exchange is done.
func (r *runner) converse(x Exchange) error {
	out, err := x.First()
	if err != nil {
		return err
	}
	if err := r.emit(out); err != nil {
		return err
	}
	for !x.Done() {
		if r.In.IsTerminal() {
			// A prompt is help, not output: a failed write does not stop the exchange.
			_, _ = fmt.Fprintf(r.Err, "%s (the server's 334 line): ", x.Want())
		}
		line, err := r.In.ReadLine()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("standard input ended before the %s", x.Want())
		}
		if err != nil {
			return err
		}
		if out, err = x.Next(line); err != nil {
			return err
		}
		if err := r.emit(out); err != nil {
			return err
		}
	}
	return nil
}

// ntlmArgs tells NTLM's USER [PASS] [DOMAIN] [CHALLENGE] apart: the last argument is the
// CHALLENGE when there are four, or when it is an NTLM type 2 message in base64 (so that
// `ntlm bob secret TlRMTVNTUAACAAAA...` works without a DOMAIN). The rest are returned in order.
func ntlmArgs(args []string) (rest []string, challenge string) {
	switch last := args[len(args)-1]; {
	case len(args) == 4:
		challenge = last
	case len(args) > 1:
		if _, err := NTLMChallenge(last); err == nil {
			challenge = last
		}
	}
	if challenge != "" {
		args = args[:len(args)-1]
	}
	return args, challenge
}

// ntlm makes the type 1 message (no password needed), or the type 3 from the server's type 2.
func (r *runner) ntlm() error {
	var challenge string
	r.args, challenge = ntlmArgs(r.args)
	p := NTLMParams{User: r.args[0], Workstation: r.f.Workstation}
	if r.f.ClientChallenge != "" {
		b, err := hex.DecodeString(r.f.ClientChallenge)
		if err != nil || len(b) != 8 {
			return usagef("--client-challenge wants 16 hex digits")
		}
		p.Fixed.ClientChallenge = b
	}
	if r.f.Timestamp != "" {
		ft, err := strconv.ParseUint(r.f.Timestamp, 10, 64)
		if err != nil {
			return usagef("--timestamp wants a FILETIME, a decimal number")
		}
		p.Fixed.Now = func() time.Time { return sasl.NTLMFiletimeTime(ft) }
	}
	if challenge != "" {
		var err error
		if p.Password, err = r.secret(1, "Password"); err != nil {
			return err
		}
		if len(r.args) > 2 {
			p.Domain = r.args[2]
		}
	}
	return r.emitOrErr(NTLM(p, challenge, r.opts()))
}

// encode encodes STRING, or all of standard input (like base64).
func (r *runner) encode() error {
	var b []byte
	if len(r.args) == 1 {
		b = []byte(r.args[0])
	} else {
		var err error
		if b, err = r.In.ReadAll(); err != nil {
			return err
		}
	}
	if r.f.Escapes {
		var err error
		if b, err = Unescape(string(b)); err != nil {
			return usagef("--escapes: %v", err)
		}
	}
	_, err := fmt.Fprintln(r.Out, Encode(b))
	return err
}

// decode decodes each BASE64 argument, or each non-empty line of standard input.
func (r *runner) decode() error {
	inputs := r.args
	if len(inputs) == 0 {
		for {
			line, err := r.In.ReadLine()
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
		d, err := Decode(s, r.opts())
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := fmt.Fprintln(r.Out); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(r.Out, FormatDecode(d)); err != nil {
			return err
		}
	}
	return nil
}
