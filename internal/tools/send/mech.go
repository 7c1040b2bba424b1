package send

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/krb5"
	"github.com/tern-mail/tern/internal/sasl"
)

// AuthAuto asks for the best mechanism the server offers (--auth without a name).
const AuthAuto = "auto"

// mechanisms are the ones tern send speaks, in the order --auth picks them: channel-bound SCRAM,
// SCRAM, then the challenge-response ones that at least keep the password off the wire, and
// last PLAIN and LOGIN, which send it (only over TLS, unless --allow-cleartext). XOAUTH2 and
// OAUTHBEARER take a token, not a password, so they are never picked by themselves.
var mechanisms = []string{
	sasl.ScramSHA256Plus, sasl.ScramSHA1Plus, sasl.ScramSHA256, sasl.ScramSHA1,
	sasl.CRAMSHA1, sasl.CRAMMD5, sasl.DigestMD5, sasl.NTLM,
	sasl.Plain, sasl.Login,
}

// tokenMechanisms take an OAuth 2.0 bearer token as the password.
var tokenMechanisms = []string{sasl.XOAuth2, sasl.OAuthBearer}

// noPassword: GSSAPI takes a Kerberos ticket (from the credential cache, or a keytab), not a
// password; it is never picked by itself either, since the credentials are a choice to make.
func noPassword(mech string) bool { return mech == sasl.GSSAPI }

// NeedsPassword reports whether --auth mech (any case, or AuthAuto) takes a password or a
// token: the command reads one only then.
func NeedsPassword(mech string) bool { return !noPassword(strings.ToUpper(mech)) }

// cleartext reports whether mech sends the password itself.
func cleartext(mech string) bool { return mech == sasl.Plain || mech == sasl.Login }

// knownMechanism reports whether tern send can run mech.
func knownMechanism(mech string) bool {
	return slices.Contains(mechanisms, mech) || slices.Contains(tokenMechanisms, mech) || noPassword(mech)
}

// pickMechanism chooses the best of offered that is safe on this connection.
func pickMechanism(offered []string, tlsOn, allowCleartext bool) (string, error) {
	for _, m := range mechanisms {
		switch {
		case !slices.Contains(offered, m):
		case strings.HasSuffix(m, "-PLUS") && !tlsOn:
		case cleartext(m) && !tlsOn && !allowCleartext:
		default:
			return m, nil
		}
	}
	if len(offered) == 0 {
		return "", fmt.Errorf("the server offers no AUTH")
	}
	why := ""
	if !tlsOn && !allowCleartext {
		why = " without TLS (use --starttls or --tls; --allow-cleartext sends a password in the clear)"
	}
	return "", fmt.Errorf("no mechanism the server offers (%s) is one tern send can use%s", strings.Join(offered, " "), why)
}

// newSASLClient builds the client half of mech from the options. o.Server is --server
// (DIGEST-MD5's digest-uri, OAUTHBEARER's host and port and GSSAPI's service principal come
// from it).
func newSASLClient(mech string, o *Options, st *tls.ConnectionState) (sasl.Client, error) {
	if mech == sasl.GSSAPI {
		return newGSSAPIClient(o)
	}
	host, p, _ := net.SplitHostPort(o.Server)
	port, _ := strconv.Atoi(p)
	c, err := sasl.NewClient(mech, sasl.ClientOptions{User: o.User, Password: o.Password, Host: host, Port: port, TLS: st})
	if err != nil {
		return nil, fmt.Errorf("unknown mechanism %q", mech)
	}
	return c, nil
}

// newGSSAPIClient gets the Kerberos credentials (--keytab and --principal, or the credential
// cache) and names the service: --spn, or smtp/<the --server host>.
func newGSSAPIClient(o *Options) (sasl.Client, error) {
	service, host := "smtp", ""
	if o.SPN != "" {
		var ok bool
		if service, host, ok = strings.Cut(o.SPN, "/"); !ok || service == "" || host == "" {
			return nil, fmt.Errorf("--spn %q: want service/host, as smtp/mx.example.com", o.SPN)
		}
	} else {
		host, _, _ = net.SplitHostPort(o.Server)
	}
	tickets, err := krb5.New(krb5.Options{Keytab: o.Keytab, Principal: o.Principal, Getenv: o.Getenv})
	if err != nil {
		return nil, err
	}
	return sasl.NewGSSAPIClient(sasl.GSSAPIClientOptions{Tickets: tickets, Service: service, Host: host}), nil
}
