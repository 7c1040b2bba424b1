package authstr

import (
	"errors"
	"fmt"

	"github.com/tern-mail/tern/internal/sasl"
)

// GSSAPIParams are the inputs of `tern auth gssapi`.
type GSSAPIParams struct {
	// Tickets are the user's Kerberos credentials (package krb5: the credential cache or a
	// keytab); the KDC is asked for a ticket for Service/Host.
	Tickets sasl.KerberosTickets
	// Service ("" for smtp) and Host name the server's principal.
	Service, Host string
	// Authzid goes into the security layer answer: the account to act as ("" for none).
	Authzid string
}

// GSSAPI is one GSSAPI exchange (RFC 4752) driven by hand: First gives the initial context
// token (the AP-REQ, asking for mutual authentication); Next takes the server's AP-REP,
// verifies it and gives the empty response, then takes the security layer offer and gives the
// wrapped answer, after which the server says 235.
type GSSAPI struct {
	c    sasl.Client
	spn  string
	o    Options
	step int // 0: nothing sent; 1: AP-REQ sent; 2: AP-REP verified; 3: answered
}

// NewGSSAPI starts an exchange.
func NewGSSAPI(p GSSAPIParams, o Options) *GSSAPI {
	if p.Service == "" {
		p.Service = "smtp"
	}
	return &GSSAPI{
		c:   sasl.NewGSSAPIClient(sasl.GSSAPIClientOptions{Tickets: p.Tickets, Service: p.Service, Host: p.Host, Authzid: p.Authzid}),
		spn: p.Service + "/" + p.Host,
		o:   o,
	}
}

// First returns the initial context token: AUTH GSSAPI <it>. Getting it asks the KDC for the
// service ticket, unless the credential cache has one.
func (g *GSSAPI) First() (Output, error) {
	if g.step != 0 {
		return Output{}, errors.New("authstr: GSSAPI: First called twice")
	}
	_, tok, err := g.c.Start()
	if err != nil {
		return Output{}, err
	}
	g.step = 1
	d := describeToken(tok)
	d.note("send it as AUTH GSSAPI <this>, then give tern auth the server's 334 line (the AP-REP)")
	return Output{Lines: []string{b64(tok)}, Explain: []Description{d}}, nil
}

// Want names the server message Next expects; "" when the exchange is over.
func (g *GSSAPI) Want() string {
	switch g.step {
	case 1:
		return "AP-REP"
	case 2:
		return "security layer offer"
	}
	return ""
}

// Done reports whether the exchange is over on the client's side.
func (g *GSSAPI) Done() bool { return g.step == 3 }

// Next takes the server's next message, base64 with or without the "334 ". An empty message
// (the server's "334 " when AUTH had no initial response) gives the initial token again.
func (g *GSSAPI) Next(line string) (Output, error) {
	want := g.Want()
	if want == "" {
		return Output{}, errors.New("authstr: GSSAPI: the exchange is over")
	}
	msg, _, err := serverMessage(line, func(string) bool { return false })
	if err != nil {
		return Output{}, fmt.Errorf("%s: %w", want, err)
	}
	resp, err := g.c.Next(msg)
	if err != nil {
		g.step = 3
		return Output{}, err
	}
	if len(msg) == 0 {
		d := describeToken(resp)
		d.note("the server sent an empty challenge (AUTH without initial response): this is the initial token again")
		return Output{Lines: []string{b64(resp)}, Explain: []Description{d}}, nil
	}
	in := describeToken(msg)
	if g.step == 1 {
		g.step = 2
		in.note("verified: it decrypts with the ticket's session key and carries back our time, so the server holds the key of %s", g.spn)
		done := Description{Title: "GSSAPI: the empty response (RFC 4752 §3.1: the context is complete); the server then sends its security layer offer"}
		return Output{Lines: []string{""}, Explain: []Description{in, done}}, nil
	}
	g.step = 3
	in.note("verified: the checksum matches the context key")
	out := describeToken(resp)
	out.note("send it; the server answers 235")
	return Output{Lines: []string{b64(resp)}, Explain: []Description{in, out}}, nil
}

// describeToken describes a GSSAPI token.
func describeToken(tok []byte) Description {
	if s, ok := sasl.DescribeGSSAPIToken(tok); ok {
		return Description{Title: s}
	}
	return Description{Title: fmt.Sprintf("binary data (%d octets): not a GSSAPI token", len(tok))}
}

// describeGSSAPI recognises the GSSAPI tokens for Decode.
func describeGSSAPI(msg []byte, _ Options) (Description, bool) {
	s, ok := sasl.DescribeGSSAPIToken(msg)
	return Description{Title: s}, ok
}
