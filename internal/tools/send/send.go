// Package send is tern send: one SMTP transaction with a readable transcript, for people who
// test mail servers (what swaks does). It owns the command's behaviour (options, the message it
// builds, the transcript and its exit status); the SMTP work is package smtpclient's, the
// mechanisms package sasl's. It prints to the writer it is given and keeps no state.
//
// The transcript shows every line like swaks: "<-" from the server, "->" from the client, "<~"
// and "~>" once TLS is on, "***" for notes and errors, and "##" under each AUTH line with what
// its base64 says. The password is masked everywhere unless ShowSecrets is set.
package send

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// Exit statuses of tern send. With several failures (a refused recipient, then another), the
// first one decides.
const (
	ExitDelivered = 0 // every recipient accepted and the message too (or every step up to --quit-after)
	ExitUsage     = 2 // bad flags or arguments; nothing was sent
	ExitFailed    = 3 // connection, TLS or protocol failure, before any reply said otherwise
	ExitTemporary = 4 // the server answered 4xx: try again later
	ExitPermanent = 5 // the server answered 5xx: this will not work as it is
)

// ErrUsage marks errors in the Options: tern send exits with ExitUsage.
var ErrUsage = errors.New("send: invalid options")

// Stages for QuitAfter, in session order.
var stages = []string{"connect", "ehlo", "tls", "auth", "mail", "rcpt"}

// DefaultMaxData is the largest --data message read.
const DefaultMaxData = 64 << 20

// Options are tern send's flags, and what tests inject.
type Options struct {
	Server         string   // host:port (the port defaults to 25, or 465 with TLS)
	From           string   // the sender; "<>" for the null sender
	To             []string // the recipients
	Auth           string   // a mechanism, AuthAuto for the best offered, or "" for no AUTH
	User           string   // the login; default: From
	Password       string   // the password (or token, for XOAUTH2 and OAUTHBEARER; none for GSSAPI)
	Keytab         string   // GSSAPI: log in with this keytab (with Principal), not the credential cache
	Principal      string   // GSSAPI: the client principal in Keytab, name or name@REALM
	SPN            string   // GSSAPI: the server's principal, service/host; default smtp/<Server's host>
	AllowCleartext bool     // let PLAIN and LOGIN send the password without TLS
	StartTLS       bool     // STARTTLS after EHLO (RFC 3207)
	TLS            bool     // TLS from the start (RFC 8314)
	Insecure       bool     // do not verify the server's certificate
	CAFile         string   // trust only the certificates in this PEM file
	EHLO           string   // the EHLO name; default: Hostname
	DataFile       string   // the message: a file, or "-" for Stdin; default: a built one
	Headers        []string // "Name: value" fields, replacing or adding
	Body           string   // the built message's body
	Pipeline       bool     // PIPELINING when the server offers it
	QuitAfter      string   // one of connect, ehlo, tls, auth, mail, rcpt; "" to send
	ShowSecrets    bool     // show the password in the transcript
	Timeout        time.Duration

	Stdin   io.Reader // for DataFile "-"
	Stdout  io.Writer // the transcript
	MaxData int64     // the largest --data message; default DefaultMaxData

	// For tests; defaults are the real thing.
	Dialer   smtpclient.Dialer // default: a net.Dialer
	Now      func() time.Time  // Date and Message-Id
	Rand     io.Reader         // Message-Id
	Hostname string            // EHLO's default and the Message-Id's domain; default: os.Hostname

	// Getenv reads KRB5_CONFIG and KRB5CCNAME for GSSAPI; default os.Getenv.
	Getenv func(string) string
}

// Run runs the session and returns its exit status, after printing the transcript to Stdout.
// The error is for what prevents a session: invalid options (wrapping ErrUsage, status
// ExitUsage) or a --data or --ca file that cannot be read.
func Run(ctx context.Context, o Options) (int, error) {
	s, err := prepare(&o)
	if err != nil {
		return ExitUsage, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	s.run(ctx)
	return s.status, nil
}

// session is one run of tern send.
type session struct {
	o      *Options
	tr     *transcript
	c      *smtpclient.Client
	tlsCfg *tls.Config
	data   *messageInfo // --data, read before connecting
	status int          // the exit status: of the first failure
	failed bool
}

// prepare checks the options, fills in defaults and reads the files.
func prepare(o *Options) (*session, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if _, perr := smtp.ParseDomain(h); err != nil || perr != nil {
			h = "localhost"
		}
		o.Hostname = h
	}
	if o.EHLO == "" {
		o.EHLO = o.Hostname
	}
	if o.User == "" {
		o.User = o.From
	}
	if o.MaxData <= 0 {
		o.MaxData = DefaultMaxData
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	cfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, tlsCfg: cfg, tr: &transcript{w: o.Stdout, password: o.Password, showSecrets: o.ShowSecrets}}
	if o.DataFile != "" {
		r := o.Stdin
		if o.DataFile != "-" {
			f, err := os.Open(o.DataFile)
			if err != nil {
				return nil, fmt.Errorf("--data: %v", err)
			}
			defer func() { _ = f.Close() }() // only read: a failed Close loses nothing
			r = f
		} else if r == nil {
			return nil, errors.New("--data -: no standard input")
		}
		m, err := readData(r, o.MaxData)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %v", o.DataFile, err)
		}
		if m.text, err = setHeaders(m.text, o.Headers); err != nil {
			return nil, err
		}
		s.data = &m
	}
	return s, nil
}

// check validates the options (before defaults).
func (o *Options) check() error {
	host, port, err := net.SplitHostPort(o.Server)
	if err != nil {
		if o.Server == "" || strings.Contains(o.Server, "]:") || strings.Count(o.Server, ":") == 1 {
			return fmt.Errorf("--server %q: want HOST:PORT", o.Server)
		}
		host, port = strings.Trim(o.Server, "[]"), "25"
		if o.TLS {
			port = "465"
		}
	}
	if host == "" || port == "" {
		return fmt.Errorf("--server %q: want HOST:PORT", o.Server)
	}
	o.Server = net.JoinHostPort(host, port)
	switch {
	case o.From == "":
		return errors.New("--from is required (\"<>\" for the null sender)")
	case len(o.To) == 0:
		return errors.New("--to is required")
	case o.StartTLS && o.TLS:
		return errors.New("--starttls and --tls exclude each other")
	case o.Insecure && o.CAFile != "":
		return errors.New("--insecure and --ca exclude each other")
	case o.DataFile != "" && o.Body != "":
		return errors.New("--data and --body exclude each other")
	case o.QuitAfter != "" && !slices.Contains(stages, o.QuitAfter):
		return fmt.Errorf("--quit-after %q: want one of %s", o.QuitAfter, strings.Join(stages, ", "))
	}
	if o.From == "<>" {
		o.From = ""
	} else if err := checkAddress(o.From); err != nil {
		return fmt.Errorf("--from: %v", err)
	}
	for _, to := range o.To {
		if err := checkAddress(to); err != nil {
			return fmt.Errorf("--to: %v", err)
		}
	}
	for _, h := range o.Headers {
		if _, _, err := checkHeader(h); err != nil {
			return err
		}
	}
	return o.checkAuth()
}

// checkAuth validates --auth and the secrets it needs.
func (o *Options) checkAuth() error {
	if o.Auth == "" {
		return nil
	}
	o.Auth = strings.ToUpper(o.Auth)
	if o.Auth == strings.ToUpper(AuthAuto) {
		o.Auth = AuthAuto
	}
	tlsOn := o.StartTLS || o.TLS
	switch m := o.Auth; {
	case m != AuthAuto && !knownMechanism(m):
		return fmt.Errorf("--auth %s: unknown mechanism (tern send has %s, %s, %s)", m,
			strings.Join(mechanisms, " "), strings.Join(tokenMechanisms, " "), sasl.GSSAPI)
	case strings.HasSuffix(m, "-PLUS") && !tlsOn:
		return fmt.Errorf("--auth %s binds to the TLS channel: use --starttls or --tls", m)
	case cleartext(m) && !tlsOn && !o.AllowCleartext:
		return fmt.Errorf("--auth %s would send the password in the clear: use --starttls or --tls (or --allow-cleartext)", m)
	case (o.Keytab != "" || o.Principal != "" || o.SPN != "") && !noPassword(m):
		return fmt.Errorf("--keytab, --principal and --spn are for --auth GSSAPI")
	case (o.Keytab == "") != (o.Principal == ""):
		return errors.New("--keytab and --principal go together")
	case o.Password == "" && !noPassword(m):
		return errors.New("--auth needs a password")
	}
	return nil
}

// checkAddress accepts a mailbox, or Postmaster alone (RFC 5321 §4.1.1.3).
func checkAddress(a string) error {
	if strings.EqualFold(a, "postmaster") {
		return nil
	}
	_, err := smtp.ParseAddress(a)
	return err
}

// fail records a failure: the first one sets the exit status.
func (s *session) fail(status int, format string, args ...any) {
	s.tr.note(format, args...)
	if !s.failed {
		s.failed, s.status = true, status
	}
}

// failErr reports err from smtpclient, with its exit status.
func (s *session) failErr(what string, err error) {
	s.fail(statusOf(err), "%s: %s", what, describeErr(err))
}

// statusOf maps an error to the exit status: the reply's class if there was a reply.
func statusOf(err error) int {
	var e *smtpclient.Error
	if !errors.As(err, &e) {
		return ExitFailed
	}
	switch {
	case e.Code >= 500, e.Code == 0 && errors.Is(e, smtpclient.ErrMessageTooBig):
		return ExitPermanent
	case e.Code >= 400:
		return ExitTemporary
	case e.Code > 0:
		return ExitFailed // an unexpected positive reply: a protocol failure
	}
	return ExitFailed
}

// describeErr says what went wrong in words for the transcript.
func describeErr(err error) string {
	var e *smtpclient.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	if e.Code != 0 {
		s := fmt.Sprint(e.Code)
		if e.Enhanced != "" {
			s += " " + e.Enhanced
		}
		if e.Text != "" {
			s += " " + strings.ReplaceAll(e.Text, "\n", " / ")
		}
		return s
	}
	msg := strings.TrimPrefix(e.Err.Error(), "smtpclient: ")
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &verr) || errors.As(err, &uerr):
		msg += " (--ca FILE trusts a certificate, --insecure skips the check)"
	case errors.Is(err, syscall.ECONNREFUSED):
		msg += " (nothing listens there: is the server running, and on that port?)"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		msg += " (the name is not in DNS: check it, or give the server's IP address)"
	case errors.As(err, &netErr) && netErr.Timeout():
		msg += " (no answer within --timeout: a firewall may be dropping the packets)"
	}
	return msg
}
