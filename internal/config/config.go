// Package config holds tern's settings: their types, their defaults (enough to run with no file
// at all), the optional TOML file that changes them, and validation. Every field documents its
// meaning, unit and default in its `doc` tag, from which Example renders an annotated file.
// Flags are applied by the command on top of what Load returns; this package does no I/O
// besides reading the file.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration.
type Config struct {
	Data     string   `toml:"data" doc:"Directory for accounts, queue, certificate and mailboxes. The TERN_DATA environment variable and --data override it."`
	Hostname string   `toml:"hostname" doc:"Name in the greeting, EHLO reply and Received headers. Empty: the machine's host name."`
	Domains  []string `toml:"domains" doc:"Local domains: mail to accounts in them is delivered here; mail to other domains is relayed only for authenticated clients."`
	Listen   Listen   `toml:"listen"`
	TLS      TLS      `toml:"tls"`
	ACME     ACME     `toml:"acme"` // acme.go
	Limits   Limits   `toml:"limits"`
	Rate     Rate     `toml:"rate"`
	Auth     Auth     `toml:"auth"`
	Inbound  Inbound  `toml:"inbound"`
	Screen   Screen   `toml:"screen"`
	Delivery Delivery `toml:"delivery"`
	Queue    Queue    `toml:"queue"`
	Reports  Reports  `toml:"reports"`
	Log      Log      `toml:"log"`

	// Addresses: aliases and subaddressing (addresses.go).
	Addresses Addresses `toml:"addresses"`

	// Where the account store is (accounts.go).
	Accounts Accounts `toml:"accounts"`

	// Content filters (filters.go).
	Milters []Milter `toml:"milter" doc:"<milterDoc>"`

	// Listeners as a list (listeners.go); without any, [listen] names them.
	Listeners []Listener `toml:"listener" doc:"<listenerDoc>"`
	Rspamd    Rspamd     `toml:"rspamd"`

	// Prometheus metrics and health checks (metrics.go).
	Metrics Metrics `toml:"metrics"`

	// The admin web interface (admin.go).
	Admin Admin `toml:"admin"`
}

// Listen holds the listener addresses; an empty one is not opened.
type Listen struct {
	SMTP        string `toml:"smtp" doc:"MX role (port 25 on a real host): mail from other servers, STARTTLS offered."`
	Submission  string `toml:"submission" doc:"Submission (port 587): mail from users, STARTTLS offered."`
	Submissions string `toml:"submissions" doc:"Submissions (port 465): mail from users over implicit TLS (RFC 8314)."`
}

// TLS holds the certificate.
type TLS struct {
	Cert string `toml:"cert" doc:"PEM certificate chain. Empty (with key empty): a self-signed certificate made on first start in <data>/tls and reused after."`
	Key  string `toml:"key" doc:"PEM private key for cert."`
	// Certs and Reload: see tlscerts.go.
	Certs  []CertPair `toml:"certs" doc:"More certificates, chosen by the name the client asks for (SNI), e.g. [{cert = \"/etc/letsencrypt/live/mx.example.com/fullchain.pem\", key = \"/etc/letsencrypt/live/mx.example.com/privkey.pem\"}]. The first (cert and key above if set, else the first here) is served when no name matches. Wildcard names cover one label."`
	Reload Duration   `toml:"reload" doc:"How often the certificate files are looked at: a changed pair (certbot or lego renewing in place) is served from the next handshake on, sessions in progress keep theirs; a half-written pair (certificate and key not matching) is ignored until both are in. SIGHUP reloads them at once. 0: only on SIGHUP."`
}

// Limits are the per-session limits; each is enforced with its own SMTP reply.
type Limits struct {
	MessageSize        int64    `toml:"message_size" doc:"Largest message accepted, in octets (advertised as SIZE)."`
	Recipients         int      `toml:"recipients" doc:"Most recipients per message (advertised as LIMITS RCPTMAX); more get 452 4.5.3."`
	RecipientOvershoot int      `toml:"recipient_overshoot" doc:"Recipients past limits.recipients that a transaction may offer (each answered 452 4.5.3) before each further one counts towards limits.errors, like Postfix's smtpd_recipient_overshoot_limit: a client that ignores RCPTMAX (Python's smtplib) sends to the accepted ones and the rest in another transaction instead of being cut off. 0: every one counts."`
	Errors             int      `toml:"errors" doc:"Error replies a session may get before it is closed with 421 4.7.0; the count restarts with each queued message."`
	IdleTimeout        Duration `toml:"idle_timeout" doc:"Longest wait for the client: a whole command line must arrive within it of the moment the wait began (input trickling in does not extend it), and no silence inside a message may last longer."`
	DataTimeout        Duration `toml:"data_timeout" doc:"Longest time to receive a whole message with DATA, or one BDAT chunk. Leave room for message_size at the slowest honest client: the default carries 10240000 octets at 11 kB/s (about 90 kbit/s); raise it with message_size. session_timeout still caps it."`
	SessionTimeout     Duration `toml:"session_timeout" doc:"Longest whole session."`
	Connections        int      `toml:"connections" doc:"Most concurrent connections in total, on all listeners (0: no limit); more get 421 4.7.0."`
	ConnectionsPerIP   int      `toml:"connections_per_ip" doc:"Most concurrent connections per client IPv4 address or IPv6 /64 (0: no limit)."`
	// The reserve keeps a few busy addresses from taking every slot (policy.ConnLimiter).
	ConnectionsReservedPercent int `toml:"connections_reserved_percent" doc:"The share of connections, in percent, kept for clients that hold few: once no more slots than that are free (the server is busy), a client gets a new connection only while it holds fewer than connections_per_ip_busy, and the smtp listener takes no more than the first half of the reserve (the second half is for the submission listeners, where users log in). 0: no reserve."`
	ConnectionsPerIPBusy       int `toml:"connections_per_ip_busy" doc:"Most concurrent connections per client (IPv4 address or IPv6 /64) while the server is busy (see connections_reserved_percent); 0: no such limit."`
}

// Auth configures SMTP AUTH.
type Auth struct {
	Mechanisms       []string `toml:"mechanisms" doc:"SASL mechanisms offered, in this order; [\"all\"] adds the legacy ones (CRAM-MD5, CRAM-SHA1, DIGEST-MD5, NTLM), whose stored secrets are crackable at MD5/MD4 speed if the account store leaks. tern user add/passwd store the secrets of exactly these mechanisms. -PLUS variants are offered only over TLS. GSSAPI is offered when gssapi_keytab is set."`
	AllowCleartext   bool     `toml:"allow_cleartext" doc:"Offer AUTH on connections without TLS (other than loopback). Passwords then cross the network readable."`
	LoopbackIsSecure bool     `toml:"loopback_is_secure" doc:"Treat loopback connections as secure enough for AUTH without TLS (for local tools and tests)."`
	SenderMustOwn    bool     `toml:"sender_must_own" doc:"An authenticated client may only use its own address (or address+detail, or <>) as MAIL FROM; otherwise 553 5.7.1."`
	AllowAuthzID     bool     `toml:"allow_authzid" doc:"Let PLAIN and SCRAM clients act for another account (an authorization identity different from the login)."`
	MaxFailures      int      `toml:"max_failures" doc:"Failed AUTH attempts from one client (IPv4 address or IPv6 /64) within failure_window that block it for block_time (421 4.7.0, whatever account and password it tries). The same number for one account (every spelling of its login counts for it), from any clients, puts the account under attack until block_time after its last failure: its failures are slowed to 5s, and a client that failed for it is refused even with the right password (answered 535 like a wrong one), while a client that did not logs in, so that guessing cannot lock the owner out. Each failure is answered after a delay that doubles from 250ms to 5s. Blocks are logged as \"auth block started\"/\"auth block ended\" with kind=client or kind=account. With the account store on PostgreSQL, failures and blocks count across the nodes that share it."`
	FailureWindow    Duration `toml:"failure_window" doc:"The window in which failed attempts are counted, per client and per account."`
	BlockTime        Duration `toml:"block_time" doc:"How long a client stays blocked, and how long after its last failure an account stays under attack."`
	GSSAPIKeytab     string   `toml:"gssapi_keytab" doc:"Keytab (MIT format, from kadmin's ktadd) with the keys of gssapi_principal. Setting it offers GSSAPI (Kerberos V5, RFC 4752), after the mechanisms listed unless they name GSSAPI; it is read at start. Empty: no GSSAPI."`
	GSSAPIPrincipal  string   `toml:"gssapi_principal" doc:"The service principal clients get tickets for, without the realm. Empty: smtp/<hostname>. Tickets for any other principal are refused."`
	GSSAPIRealm      string   `toml:"gssapi_realm" doc:"The realm of gssapi_principal, and of the principals the \"local\" map takes. Empty: the realm of the keytab's entries."`
	GSSAPIMap        string   `toml:"gssapi_map" doc:"How a client principal becomes an account: \"local\" maps name@gssapi_realm to the account name in the first local domain (alice@EXAMPLE.COM -> alice@example.com); \"file\" uses only gssapi_map_file. Entries of gssapi_map_file come first either way; the account must exist."`
	GSSAPIMapFile    string   `toml:"gssapi_map_file" doc:"File of \"principal account\" lines (principal with realm; account an address or a name in the first local domain; # comments), read at start. Empty: none."`
	GSSAPIClockSkew  Duration `toml:"gssapi_clock_skew" doc:"How far a client's clock may be from ours, and how long after its end a ticket is still taken (MIT's clockskew)."`
	// NTLMv1 is opt-in: its responses give the NT hash to anyone who captured one exchange.
	NTLMv1 bool `toml:"ntlm_v1" doc:"Accept NTLMv1 responses (and NTLM2 session responses) to NTLM, as old clients send them (Authen::NTLM, so swaks' default NTLM and gen-auth). Insecure: one captured exchange gives away the NT hash (three 56-bit DES keys, no salt: cracked with rented hardware whatever the password's strength), and the NT hash logs in by NTLM; use it over TLS, and only for clients that cannot do NTLMv2. Needs NTLM in mechanisms; no new secret (the NT hash serves both). Default: false, NTLMv2 only."`

	// Policy for the messages of authenticated clients (policy.Headers).
	AddMissingHeaders bool `toml:"add_missing_headers" doc:"Add Date: and Message-ID: to a message from an authenticated client that lacks them (RFC 6409 §8.2, §8.3), at the end of its header section, as Postfix's cleanup does for the clients in local_header_rewrite_clients: Date in the server's time zone, Message-ID <time.queue id.random@hostname>. Never for mail from unauthenticated clients (other servers, on the smtp listener), which is stored as it was sent. false: store every message as sent."`
}

// Inbound configures the checking of mail from other servers (policy.Inbound).
type Inbound struct {
	SPFDKIM   bool   `toml:"spf_dkim" doc:"Check SPF (RFC 7208: the MAIL FROM domain, or the HELO name for the null sender), every DKIM signature (RFC 6376, up to 5) and DMARC (RFC 7489, see dmarc) of mail from unauthenticated clients on the smtp listener, through delivery.resolver (answers cached for their TTL), and record the results in an Authentication-Results field (RFC 8601) on top of the message, with hostname as authserv-id. Such fields claiming hostname that arrive from outside are removed whatever this says. Mail from authenticated clients is never checked. The checks cost a few DNS lookups per message (cached), made while the message arrives; without a reachable resolver they are temperror, recorded (see temperror). false: nothing is checked or added. Default: true."`
	TempError string `toml:"temperror" doc:"What a temporary DNS failure (SPF, DKIM or DMARC temperror) does: \"accept\" records it in the header and accepts the message; \"defer\" answers 451 4.4.3, so that the sender tries again later."`

	// DMARC (policy.Inbound): it runs whenever spf_dkim does.
	DMARC        string   `toml:"dmarc" doc:"What a DMARC failure (RFC 7489: neither SPF nor DKIM passed for a domain aligned with the From domain) does to mail checked by spf_dkim: \"enforce\" applies what the From domain publishes (p=, or sp= for its subdomains; pct= samples): reject answers 550 5.7.1 after DATA, quarantine delivers into the mailbox's Junk folder (Maildir .Junk; over LMTP with an X-Spam-Flag: YES field for the server's Sieve to act on), none delivers as usual; \"quarantine\" never rejects (a reject becomes a quarantine); \"none\" only records the result in the Authentication-Results field. A DMARC temperror (its record could not be fetched, or no aligned pass while SPF or DKIM of an aligned domain failed temporarily) follows temperror. Default: \"enforce\"."`
	DMARCDomains []string `toml:"dmarc_domains" doc:"Overrides of dmarc for the recipients in some local domains, as \"domain=mode\" entries (mode: enforce, quarantine or none), e.g. [\"lists.example.com=none\"] for a domain whose users get mail from mailing lists that break DKIM. A message has one fate: when its recipients' domains are set differently, the most lenient mode among them applies. Default: none."`
}

// DMARCOverrides returns inbound.dmarc_domains as domain (lower case, no final dot) → mode.
func (i Inbound) DMARCOverrides() (map[string]string, error) {
	m := map[string]string{}
	for _, e := range i.DMARCDomains {
		d, mode, ok := strings.Cut(e, "=")
		d, mode = strings.TrimSpace(d), strings.TrimSpace(mode)
		if !ok || !validDMARCMode(mode) {
			return nil, fmt.Errorf("inbound.dmarc_domains %q: want \"domain=enforce|quarantine|none\"", e)
		}
		norm, err := parseDomain(d)
		if err != nil {
			return nil, fmt.Errorf("inbound.dmarc_domains %q: %w", e, err)
		}
		m[norm] = mode
	}
	return m, nil
}

func validDMARCMode(m string) bool { return m == "enforce" || m == "quarantine" || m == "none" }

// DefaultMechanisms are offered unless auth.mechanisms says otherwise: the ones whose stored
// secrets are slow to crack (argon2id, SCRAM).
func DefaultMechanisms() []string {
	return []string{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"}
}

// LegacyMechanisms are added by "all".
func LegacyMechanisms() []string { return []string{"CRAM-MD5", "CRAM-SHA1", "DIGEST-MD5", "NTLM"} }

// GSSAPI is offered when a keytab is configured (auth.gssapi_keytab), never by "all" alone:
// without a keytab it cannot work. It stores no secret.
const GSSAPI = "GSSAPI"

// ParseMechanisms turns a list from a flag or the file ("all", or names separated by commas
// or spaces, any case) into canonical mechanism names, refusing unknown ones.
func ParseMechanisms(list []string) ([]string, error) {
	known := append(DefaultMechanisms(), LegacyMechanisms()...)
	var out []string
	seen := map[string]bool{}
	add := func(m string) {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	for _, item := range list {
		for _, m := range strings.FieldsFunc(item, func(r rune) bool { return r == ',' || r == ' ' }) {
			m = strings.ToUpper(m)
			switch {
			case m == "ALL":
				for _, d := range known {
					add(d)
				}
			case slices.Contains(known, m), m == GSSAPI:
				add(m)
			default:
				return nil, fmt.Errorf("unknown SASL mechanism %q (known: %s %s, or all)", m, strings.Join(known, " "), GSSAPI)
			}
		}
	}
	return out, nil
}

// Queue configures the queue and its delivery.
type Queue struct {
	Workers       int        `toml:"workers" doc:"Deliveries in parallel."`
	Destination   int        `toml:"destination_concurrency" doc:"Most deliveries at once to one remote destination (a domain, or the relayhost), so that a server that hangs cannot hold every worker; 0: half the workers."`
	MinBackoff    Duration   `toml:"min_backoff" doc:"Wait before the first retry of a temporary failure; it doubles with each attempt (with 10% jitter)."`
	MaxBackoff    Duration   `toml:"max_backoff" doc:"Longest wait between retries."`
	RetrySchedule []Duration `toml:"retry_schedule" doc:"Fixed waits between attempts, replacing min/max_backoff when set (the last one repeats); --retry-schedule 1s,2s,4s."`
	MaxAge        Duration   `toml:"max_age" doc:"How long a message is retried before its sender gets a bounce."`
	BounceMaxAge  Duration   `toml:"bounce_max_age" doc:"How long a bounce or other report (from the null sender) is retried before it is dropped."`
	DelayWarning  Duration   `toml:"delay_warning" doc:"How long a message may wait before its sender is told, once, that it is delayed (a DSN with Action: delayed); 0 never."`
}

// Delivery configures delivery: remote (by MX, or through a smarthost) and local (Maildir or LMTP).
type Delivery struct {
	Resolver      string            `toml:"resolver" doc:"DNS server (HOST:PORT) for MX, address, MTA-STS and TLSA lookups instead of the system's (/etc/resolv.conf); --resolver. DANE is used only when its answers are DNSSEC-validated (AD bit), so point it at a validating resolver you trust."`
	RemotePort    int               `toml:"remote_port" doc:"Port of the MX hosts; --remote-port."`
	MTASTSPort    int               `toml:"mta_sts_port" doc:"Port of the MTA-STS policy hosts (https://mta-sts.<domain>/, whose address is looked up through resolver). Change it only for tests, as remote_port."`
	Relayhost     string            `toml:"relayhost" doc:"Smarthost (HOST:PORT) that takes all remote mail instead of MX lookup; --relayhost."`
	RelayUser     string            `toml:"relay_user" doc:"Login for AUTH at the relayhost (empty: no AUTH)."`
	RelayPassword string            `toml:"relay_password" doc:"Password for AUTH at the relayhost; keep this file readable by tern only."`
	RelayTLS      string            `toml:"relay_tls" doc:"TLS to the relayhost: \"starttls\", or \"implicit\" (TLS from the first octet: the submissions port, RFC 8314); empty picks implicit for port 465, STARTTLS for any other."`
	TLSPolicy     map[string]string `toml:"tls_policy" doc:"Outbound TLS per destination domain (\".example.com\" covers subdomains): \"may\" (opportunistic, the default), \"encrypt\" (TLS required) or \"verify\" (TLS with a valid certificate). MTA-STS and DANE apply on top."`
	LMTP          string            `toml:"lmtp" doc:"Deliver local mail over LMTP (HOST:PORT or unix:/path, e.g. Dovecot) instead of to Maildir under the data directory."`
	MaildirSyncFS bool              `toml:"maildir_syncfs" doc:"Under load, make the Maildir files that wait for the same batch durable with one syncfs(2) of their file system instead of one fsync each (Linux 5.8 or later; elsewhere, and for a file that waits alone, its own fsync). Every file is durable before it goes into new/ either way. A syncfs also writes out everything else waiting on that file system: set false if the data directory shares it with heavy writers."`
}

// Reports configures the DMARC aggregate reports and SMTP TLS reports tern sends (package
// reports). Both are on by default, as in mox: they go only to domains that ask for them in
// DNS (rua= of their DMARC record, their _smtp._tls record), once a day, and they are how a
// domain owner learns that its mail fails authentication or TLS somewhere; the big mailbox
// providers send them too.
type Reports struct {
	DMARC bool   `toml:"dmarc" doc:"Record the DMARC results of the mail received (of domains whose DMARC record has rua=) and send each such domain a daily aggregate report (RFC 7489 §7.2), gzip'd XML, to its mailto: rua addresses (an address in another organisational domain only when that domain authorizes it, RFC 7489 §7.1). Sent after UTC midnight with up to 30 minutes' jitter; tern reports send --now sends at once."`
	TLS   bool   `toml:"tls" doc:"Record the outcome of every outbound TLS session and send each recipient domain that publishes a TLSRPT record (_smtp._tls, RFC 8460) a daily report, gzip'd JSON, mailed to its mailto: addresses and POSTed to its https: ones (public addresses only, one attempt)."`
	From  string `toml:"from" doc:"From address of the reports, and the contact they give. Empty: postmaster@hostname. Remote delivery signs reports with the DKIM keys of this address's domain, or of its nearest parent with keys: give it keys (tern dkim keygen), or receivers may discard unsigned reports."`
}

// Log configures logging (to standard error).
type Log struct {
	Level  string `toml:"level" doc:"debug, info, warn or error."`
	Format string `toml:"format" doc:"text (one line of key=value pairs per event, as slog's TextHandler writes them) or json (one JSON object per line, slog's JSONHandler: time, level, msg and the same keys); --log-format."`
}

// Duration is a time.Duration written as "5m", "1h30m".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText renders the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the embedded defaults: a complete, working configuration on loopback ports.
func Default() Config {
	return Config{
		Data:    "./tern-data",
		Domains: []string{"localhost"},
		// Addresses: aliases and subaddressing (addresses.go).
		Addresses: DefaultAddresses(),
		Listen: Listen{
			SMTP:        "127.0.0.1:2525",
			Submission:  "127.0.0.1:2587",
			Submissions: "127.0.0.1:2465",
		},
		Limits: Limits{
			MessageSize:        10240000,
			Recipients:         1000,
			RecipientOvershoot: 1000,
			Errors:             20,
			IdleTimeout:        Duration{5 * time.Minute},
			DataTimeout:        Duration{15 * time.Minute},
			SessionTimeout:     Duration{30 * time.Minute},
			Connections:        1000,
			ConnectionsPerIP:   100,
			// A reserve of 200 slots; a client holding 10 gets no more of them.
			ConnectionsReservedPercent: 20,
			ConnectionsPerIPBusy:       10,
		},
		Rate: DefaultRate(),
		Auth: Auth{
			Mechanisms:       DefaultMechanisms(),
			LoopbackIsSecure: true,
			SenderMustOwn:    true,
			MaxFailures:      10,
			FailureWindow:    Duration{15 * time.Minute},
			BlockTime:        Duration{15 * time.Minute},
			GSSAPIMap:        "local",
			GSSAPIClockSkew:  Duration{5 * time.Minute},

			AddMissingHeaders: true,
		},
		Inbound: Inbound{SPFDKIM: true, TempError: "accept", DMARC: "enforce", DMARCDomains: []string{}},
		Screen:  defaultScreen(),
		Queue: Queue{
			Workers:      32,
			MinBackoff:   Duration{time.Minute},
			MaxBackoff:   Duration{time.Hour},
			MaxAge:       Duration{5 * 24 * time.Hour},
			BounceMaxAge: Duration{2 * 24 * time.Hour},
			DelayWarning: Duration{4 * time.Hour},
		},
		Delivery:  Delivery{RemotePort: 25, MTASTSPort: 443, MaildirSyncFS: true},
		Reports:   Reports{DMARC: true, TLS: true},
		TLS:       defaultTLS(),
		ACME:      defaultACME(),
		Log:       Log{Level: "info", Format: "text"},
		Milters:   []Milter{},
		Listeners: []Listener{},
		Rspamd:    defaultRspamd(),
		Admin:     Admin{SessionTimeout: Duration{DefaultAdminSession}},
	}
}

// Load returns the defaults with the file at path (if path is not empty) applied on top.
// Unknown keys are an error, so that a typo does not silently leave a default in place.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("cannot read the configuration file: %w", err)
	}
	// Every problem with its line and key, unknown keys with a "did you mean" (check.go).
	return c, decodeFile(path, string(b), &c)
}

// DefaultHostname is the host name used when the configuration gives none: the machine's.
func DefaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// Validate checks the configuration as a whole and fills in the host name if it is empty.
func (c *Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if c.Hostname == "" {
		c.Hostname = DefaultHostname()
	} else if h, err := parseDomain(c.Hostname); err != nil {
		errs = append(errs, fmt.Errorf("hostname (--hostname) %q: %w", c.Hostname, err))
	} else {
		c.Hostname = h
	}
	if len(c.Domains) == 0 {
		errs = append(errs, errors.New("no local domain (domains / --domain)"))
	}
	for i, d := range c.Domains {
		norm, err := parseDomain(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("domains (--domain) %q: %w", d, err))
		}
		c.Domains[i] = norm
	}
	for _, l := range []struct{ name, addr string }{
		{"smtp", c.Listen.SMTP}, {"submission", c.Listen.Submission}, {"submissions", c.Listen.Submissions},
	} {
		if l.addr == "" {
			continue
		}
		if err := checkListen(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("listen.%s (--%s) %q: %w", l.name, l.name, l.addr, err))
		}
	}
	if c.Listen.SMTP == "" && c.Listen.Submission == "" && c.Listen.Submissions == "" && len(c.Listeners) == 0 {
		errs = append(errs, errors.New("no listener"))
	}
	if t := c.Inbound.TempError; t != "accept" && t != "defer" {
		errs = append(errs, fmt.Errorf("inbound.temperror %q: want \"accept\" or \"defer\"", t))
	}
	if f := c.Reports.From; f != "" {
		if at := strings.LastIndexByte(f, '@'); at <= 0 || at == len(f)-1 || strings.ContainsAny(f, " <>\t\r\n") {
			errs = append(errs, fmt.Errorf("reports.from %q: want an address, local@domain", f))
		}
	}
	if m := c.Inbound.DMARC; !validDMARCMode(m) {
		errs = append(errs, fmt.Errorf("inbound.dmarc %q: want \"enforce\", \"quarantine\" or \"none\"", m))
	}
	if _, err := c.Inbound.DMARCOverrides(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Screen.validate()...)
	errs = append(errs, c.Metrics.validate()...)
	errs = append(errs, c.Admin.validate()...)
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls.cert and tls.key go together"))
	}
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.ACME.validate()...)
	l := c.Limits
	if l.MessageSize <= 0 || l.Recipients <= 0 || l.Errors <= 0 || l.IdleTimeout.Duration <= 0 ||
		l.DataTimeout.Duration <= 0 || l.SessionTimeout.Duration <= 0 {
		errs = append(errs, errors.New("limits must be positive (connections may be 0 for no limit, recipient_overshoot 0 for none)"))
	}
	if l.RecipientOvershoot < 0 {
		errs = append(errs, errors.New("limits.recipient_overshoot must not be negative"))
	}
	if l.Connections < 0 || l.ConnectionsPerIP < 0 || l.ConnectionsPerIPBusy < 0 {
		errs = append(errs, errors.New("limits.connections, connections_per_ip and connections_per_ip_busy must not be negative"))
	}
	if l.ConnectionsReservedPercent < 0 || l.ConnectionsReservedPercent > 90 {
		errs = append(errs, errors.New("limits.connections_reserved_percent must be between 0 and 90"))
	}
	if l.Recipients < 100 {
		// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
		errs = append(errs, errors.New("limits.recipients must be at least 100 (RFC 5321 §4.5.3.1.8)"))
	}
	errs = append(errs, c.validateFilters()...)
	errs = append(errs, c.Rate.validate()...)
	if m, err := ParseMechanisms(c.Auth.Mechanisms); err != nil {
		errs = append(errs, fmt.Errorf("auth.mechanisms: %w", err))
	} else {
		switch {
		case c.Auth.GSSAPIKeytab != "" && !slices.Contains(m, GSSAPI):
			m = append(m, GSSAPI)
		case c.Auth.GSSAPIKeytab == "" && slices.Contains(m, GSSAPI):
			errs = append(errs, errors.New("auth.mechanisms: GSSAPI needs auth.gssapi_keytab"))
		}
		c.Auth.Mechanisms = m
		errs = append(errs, c.validateListeners()...) // per-listener mechanisms: after auth.mechanisms
	}
	if c.Auth.GSSAPIKeytab != "" {
		switch {
		case c.Auth.GSSAPIMap != "local" && c.Auth.GSSAPIMap != "file":
			errs = append(errs, fmt.Errorf("auth.gssapi_map %q: want local or file", c.Auth.GSSAPIMap))
		case c.Auth.GSSAPIMap == "file" && c.Auth.GSSAPIMapFile == "":
			errs = append(errs, errors.New("auth.gssapi_map \"file\" needs auth.gssapi_map_file"))
		}
		if strings.Contains(c.Auth.GSSAPIPrincipal, "@") {
			errs = append(errs, errors.New("auth.gssapi_principal: without the realm (that is auth.gssapi_realm)"))
		}
		if c.Auth.GSSAPIClockSkew.Duration <= 0 {
			errs = append(errs, errors.New("auth.gssapi_clock_skew must be positive"))
		}
	}
	if c.Auth.MaxFailures <= 0 || c.Auth.FailureWindow.Duration <= 0 || c.Auth.BlockTime.Duration <= 0 {
		errs = append(errs, errors.New("auth.max_failures, failure_window and block_time must be positive"))
	}
	for d, m := range c.Delivery.TLSPolicy {
		if m != "may" && m != "encrypt" && m != "verify" {
			errs = append(errs, fmt.Errorf("delivery.tls_policy %q: %q, want may, encrypt or verify", d, m))
		}
	}
	switch c.Delivery.RelayTLS {
	case "", "starttls", "implicit":
	default:
		errs = append(errs, fmt.Errorf("delivery.relay_tls %q: want starttls or implicit", c.Delivery.RelayTLS))
	}
	if c.Delivery.RemotePort <= 0 || c.Delivery.RemotePort > 65535 {
		errs = append(errs, errors.New("delivery.remote_port must be a port number"))
	}
	if c.Delivery.MTASTSPort <= 0 || c.Delivery.MTASTSPort > 65535 {
		errs = append(errs, errors.New("delivery.mta_sts_port must be a port number"))
	}
	for _, r := range []struct{ name, addr string }{{"resolver", c.Delivery.Resolver}, {"relayhost", c.Delivery.Relayhost}} {
		if r.addr == "" {
			continue
		}
		if err := CheckRemote(r.addr); err != nil {
			errs = append(errs, fmt.Errorf("delivery.%s (--%s) %q: %w", r.name, r.name, r.addr, err))
		}
	}
	if c.Delivery.LMTP != "" {
		if _, _, err := ParseLMTPAddr(c.Delivery.LMTP); err != nil {
			errs = append(errs, fmt.Errorf("delivery.lmtp %q: want HOST:PORT or unix:/path/to/socket", c.Delivery.LMTP))
		}
	}
	// Addresses: aliases and subaddressing (addresses.go).
	errs = append(errs, c.Addresses.validate()...)
	// Where the account store is (accounts.go).
	if _, _, err := AccountStore(c.Accounts.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Queue.Workers <= 0 {
		errs = append(errs, errors.New("queue.workers must be positive"))
	}
	if c.Queue.Destination < 0 {
		errs = append(errs, errors.New("queue.destination_concurrency must not be negative"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format (--log-format) %q: want text or json", c.Log.Format))
	}
	if len(errs) > 0 {
		return &InvalidError{Problems: errs}
	}
	return nil
}
