// Package krb5 finds a user's Kerberos credentials for the GSSAPI client half (tern send --auth
// GSSAPI, tern auth gssapi) and turns them into service tickets: the configuration
// ($KRB5_CONFIG, else /etc/krb5.conf), then the credential cache a kinit filled
// ($KRB5CCNAME, else /tmp/krb5cc_<uid>) or a keytab and principal. It is the file and KDC I/O
// that package sasl leaves out; the KDC exchanges themselves are github.com/jcmturner/gokrb5's.
// It keeps nothing between calls and writes nothing: a ticket it gets from the KDC is not
// added to the credential cache.
package krb5

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Options say where the credentials are. The zero value means the MIT defaults and the
// environment, as kinit and klist use them.
type Options struct {
	// Config is the krb5.conf; "" means $KRB5_CONFIG (its first file), else /etc/krb5.conf.
	Config string
	// CCache is the credential cache; "" means $KRB5CCNAME, else /tmp/krb5cc_<uid>. Only
	// FILE caches can be read ("FILE:" may prefix the path).
	CCache string
	// Keytab, with Principal, logs in with the principal's key from the keytab (kinit -k)
	// instead of using a credential cache.
	Keytab, Principal string
	// Getenv is for tests; nil means os.Getenv.
	Getenv func(string) string
}

// Tickets gets service tickets for one client principal; it implements sasl.KerberosTickets.
type Tickets struct {
	cl     *client.Client
	source string // what the credentials came from, for messages
}

// New loads the configuration and the credentials. With a keytab it logs in at the KDC (an AS
// exchange); with a credential cache it only reads the cache.
func New(o Options) (*Tickets, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfgPath := o.Config
	if cfgPath == "" {
		// KRB5_CONFIG may list several files (colon-separated); gokrb5 reads one.
		cfgPath, _, _ = strings.Cut(getenv("KRB5_CONFIG"), ":")
	}
	if cfgPath == "" {
		cfgPath = "/etc/krb5.conf"
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		//lint:ignore ST1005 "Kerberos" is a proper noun, capitalized as an admin reads it
		return nil, fmt.Errorf("Kerberos configuration %s: %v", cfgPath, err)
	}
	if o.Keytab != "" || o.Principal != "" {
		return withKeytab(cfg, o)
	}
	path := o.CCache
	if path == "" {
		path = getenv("KRB5CCNAME")
	}
	if path == "" {
		path = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
	}
	if typ, rest, ok := strings.Cut(path, ":"); ok && !strings.Contains(typ, "/") {
		if typ != "FILE" {
			//lint:ignore ST1005 "Kerberos" is a proper noun, capitalized as an admin reads it
			return nil, fmt.Errorf("Kerberos credential cache %s: only FILE caches can be read (use KRB5CCNAME=FILE:/path, or --keytab)", path)
		}
		path = rest
	}
	cc, err := credentials.LoadCCache(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no Kerberos credential cache at %s: run kinit first (or use --keytab and --principal)", path)
		}
		//lint:ignore ST1005 "Kerberos" is a proper noun, capitalized as an admin reads it
		return nil, fmt.Errorf("Kerberos credential cache %s: %v", path, err)
	}
	cl, err := client.NewFromCCache(cc, cfg, client.DisablePAFXFAST(true))
	if err != nil {
		//lint:ignore ST1005 "Kerberos" is a proper noun, capitalized as an admin reads it
		return nil, fmt.Errorf("Kerberos credential cache %s: %v", path, err)
	}
	return &Tickets{cl: cl, source: "credential cache " + path}, nil
}

// withKeytab logs in as o.Principal ("alice" in the default realm, or "alice@REALM") with its
// key from o.Keytab.
func withKeytab(cfg *config.Config, o Options) (*Tickets, error) {
	if o.Keytab == "" || o.Principal == "" {
		return nil, errors.New("a keytab needs a principal, and a principal a keytab")
	}
	kt, err := keytab.Load(o.Keytab)
	if err != nil {
		return nil, fmt.Errorf("keytab %s: %v", o.Keytab, err)
	}
	name, realm := o.Principal, cfg.LibDefaults.DefaultRealm
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		name, realm = name[:i], name[i+1:]
	}
	if name == "" || realm == "" {
		return nil, fmt.Errorf("principal %q: want name@REALM (no default_realm in the configuration)", o.Principal)
	}
	cl := client.NewWithKeytab(name, realm, kt, cfg, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		return nil, fmt.Errorf("logging in as %s@%s with keytab %s: %v", name, realm, o.Keytab, err)
	}
	return &Tickets{cl: cl, source: "keytab " + o.Keytab}, nil
}

// ServiceTicket returns a ticket for spn ("smtp/mx.example.com") and its session key: from the
// credential cache while one there is valid, else from the KDC with the ticket-granting ticket.
func (t *Tickets) ServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error) {
	tkt, key, err := t.cl.GetServiceTicket(spn)
	if err != nil {
		return tkt, key, fmt.Errorf("(credentials from the %s): %v", t.source, err)
	}
	return tkt, key, nil
}

// Client is the client principal and its realm.
func (t *Tickets) Client() (types.PrincipalName, string) {
	return t.cl.Credentials.CName(), t.cl.Credentials.Domain()
}

// Principal is the client principal as name@REALM.
func (t *Tickets) Principal() string {
	n, r := t.Client()
	return n.PrincipalNameString() + "@" + r
}
