package authstr

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/sasl"
)

// Command is one `tern auth` subcommand: a mechanism, or encode and decode. The table of
// commands (Commands) is the one list of what tern auth makes: the help, the usage errors and
// the command line are derived from it.
type Command struct {
	// Name is the subcommand, lower case; Aliases are other names for it (gen-auth's for NTLM).
	Name    string
	Aliases []string
	// Mech is the SASL mechanism, as advertised in EHLO; "" for encode and decode.
	Mech string
	// Args is the synopsis of the arguments; the command takes Min to Max of them.
	Args     string
	Min, Max int
	// Flags are the flags it takes besides --explain and --show-secrets (see Bind).
	Flags []string
	// Short says what it prints, in a line; Example is a command line (or several, one a line).
	Short, Example string
	run            func(r *runner) error
}

// Commands are the subcommands of tern auth, in the order of its help.
func Commands() []Command {
	ntlmFlags := []string{"workstation", "client-challenge", "timestamp"}
	cram := func(mech string) Command {
		name := strings.ToLower(mech)
		return Command{Name: name, Mech: mech, Args: "USER [PASS] CHALLENGE", Min: 2, Max: 3,
			Short:   "the answer to a " + mech + " challenge (base64, or raw text starting with '<')",
			Example: "tern auth " + name + " postmaster@example.com pass PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg==",
			run:     func(r *runner) error { return r.cram(mech) }}
	}
	scram := func(mech string) Command {
		name := strings.ToLower(mech)
		return Command{Name: name, Mech: mech, Args: "USER [PASS]", Min: 1, Max: 2, Flags: []string{"authzid", "nonce"},
			Short:   "a " + mech + " exchange, with the server's lines pasted in; says whether its signature verified",
			Example: "tern auth " + name + " bob",
			run:     func(r *runner) error { return r.scram(mech) }}
	}
	return []Command{
		{Name: "plain", Mech: sasl.Plain, Args: "USER [PASS]", Min: 1, Max: 2, Flags: []string{"authzid"},
			Short: "PLAIN's initial response", Example: "tern auth plain kenneth.burgener 'ImBB1999!'", run: (*runner).plain},
		{Name: "login", Mech: sasl.Login, Args: "USER [PASS]", Min: 1, Max: 2,
			Short: "LOGIN's two answers: the user name, the password", Example: "tern auth login kenneth.burgener 'ImBB1999!'", run: (*runner).login},
		cram(sasl.CRAMMD5),
		cram(sasl.CRAMSHA1),
		{Name: "digest-md5", Mech: sasl.DigestMD5, Args: "USER [PASS] CHALLENGE", Min: 2, Max: 3,
			Flags: []string{"host", "realm", "service", "authzid", "cnonce"},
			Short: "the answer to a DIGEST-MD5 challenge, and the rspauth the server must send back",
			Example: "tern auth digest-md5 --host mx.example.com bob secret " +
				"cmVhbG09ImV4YW1wbGUuY29tIixub25jZT0iYWJjIixhbGdvcml0aG09bWQ1LXNlc3M=",
			run: (*runner).digest},
		scram(sasl.ScramSHA1),
		scram(sasl.ScramSHA256),
		{Name: "gssapi", Mech: sasl.GSSAPI, Args: "HOST", Min: 1, Max: 1, Flags: []string{"service", "keytab", "principal", "authzid"},
			Short:   "a Kerberos GSSAPI exchange (the ticket from kinit), with the server's lines pasted in",
			Example: "tern auth gssapi mx.example.com", run: (*runner).gssapi},
		{Name: "ntlm", Aliases: []string{"spa", "msn"}, Mech: sasl.NTLM, Args: "USER [PASS] [DOMAIN] [CHALLENGE]", Min: 1, Max: 4,
			Flags: ntlmFlags, Short: "NTLM's type 1 message, or type 3 from the server's type 2",
			Example: "tern auth ntlm bob\ntern auth ntlm bob secret '' TlRMTVNTUAACAAAA...", run: (*runner).ntlm},
		{Name: "xoauth2", Mech: sasl.XOAuth2, Args: "USER [TOKEN]", Min: 1, Max: 2,
			Short: "XOAUTH2's initial response, with an OAuth 2.0 access token", Example: "tern auth xoauth2 bob@gmail.com ya29.a0AfB_byC",
			run: (*runner).xoauth2},
		{Name: "oauthbearer", Mech: sasl.OAuthBearer, Args: "USER [TOKEN]", Min: 1, Max: 2, Flags: []string{"host", "port"},
			Short:   "OAUTHBEARER's initial response (RFC 7628), with an OAuth 2.0 access token",
			Example: "tern auth oauthbearer --host smtp.gmail.com --port 587 bob@gmail.com ya29.a0AfB_byC", run: (*runner).oauthBearer},
		{Name: "encode", Args: "[STRING]", Min: 0, Max: 1, Flags: []string{"escapes"},
			Short: "base64 of STRING, or of all of standard input", Example: `tern auth encode --escapes '\0bob\0secret'`, run: (*runner).encode},
		{Name: "decode", Args: "[BASE64...]", Min: 0, Max: 1000,
			Short:   "what base64 strings say: each BASE64, or each line of standard input",
			Example: "tern auth decode AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh", run: (*runner).decode},
	}
}

// Lookup finds a command by name or alias, in any case. The SCRAM -PLUS names get
// ErrChannelBinding's explanation; an unknown name, the list of names.
func Lookup(name string) (Command, error) {
	name = strings.ToLower(name)
	for _, c := range Commands() {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c, nil
		}
	}
	if name == strings.ToLower(sasl.ScramSHA1Plus) || name == strings.ToLower(sasl.ScramSHA256Plus) {
		return Command{}, &UsageError{Msg: strings.TrimPrefix(ErrChannelBinding.Error(), "authstr: "), err: ErrChannelBinding}
	}
	return Command{}, usagef("unknown mechanism %q", name)
}

// Names are the commands' names, in the order of the help.
func Names() []string {
	var names []string
	for _, c := range Commands() {
		names = append(names, c.Name)
	}
	return names
}

// Use is the command's synopsis: "NAME [flags] ARGS".
func (c Command) Use() string { return c.Name + " [flags] " + c.Args }

// Help is the part of `tern auth -h` that shows each command: its synopsis and an example (the
// Short lines are cobra's list of subcommands).
func Help() string {
	var b strings.Builder
	for _, c := range Commands() {
		name := c.Name
		for _, a := range c.Aliases {
			name += " | " + a
		}
		flags := ""
		if len(c.Flags) > 0 {
			flags = " [--" + strings.Join(c.Flags, " --") + "]"
		}
		fmt.Fprintf(&b, "  %s %s%s\n", name, c.Args, flags)
		for _, ex := range strings.Split(c.Example, "\n") {
			fmt.Fprintf(&b, "      %s\n", ex)
		}
	}
	return b.String()
}

// UsageError is a mistake on the command line (a missing argument, a flag that does not fit):
// the command says it with the usage and exits with status 2. Other errors are the inputs' or
// the server's (a challenge that is not base64, a signature that does not verify): status 1.
type UsageError struct {
	Msg string
	err error // the cause, for errors.Is: ErrChannelBinding
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}
