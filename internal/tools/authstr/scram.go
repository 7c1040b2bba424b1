package authstr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/sasl"
)

// ScramParams are the inputs of `tern auth scram-sha-1|scram-sha-256`.
type ScramParams struct {
	// Mech is sasl.ScramSHA1 or sasl.ScramSHA256. The -PLUS names are refused: they bind the
	// exchange to a TLS connection, and a tool run from a terminal has none.
	Mech                    string
	Authzid, User, Password string
	// Nonce fixes the client nonce (for RFC 5802 §5 / RFC 7677 §3); "" draws a random one.
	Nonce string
}

// ErrChannelBinding refuses the SCRAM -PLUS mechanisms.
var ErrChannelBinding = errors.New("authstr: the -PLUS mechanisms bind the exchange to the client's TLS connection (RFC 5802 §6), " +
	"and tern auth has no connection: use the name without -PLUS, or a client that makes the TLS connection itself")

// Scram is one SCRAM exchange driven by hand: First gives the client-first-message; Next takes
// the server-first-message and gives the client-final-message, then takes the
// server-final-message, verifies the server's signature and gives the empty response that
// ends the exchange.
type Scram struct {
	mech     string
	password string
	c        sasl.Client
	o        Options
	step     int // 0: nothing sent; 1: client-first sent; 2: client-final sent; 3: verified
}

// NewScram starts an exchange.
func NewScram(p ScramParams, o Options) (*Scram, error) {
	switch p.Mech {
	case sasl.ScramSHA1, sasl.ScramSHA256:
	case sasl.ScramSHA1Plus, sasl.ScramSHA256Plus:
		return nil, ErrChannelBinding
	default:
		return nil, fmt.Errorf("authstr: %q is not a SCRAM mechanism", p.Mech)
	}
	s := &Scram{mech: p.Mech, password: p.Password, o: o}
	if p.Nonce != "" {
		s.c = sasl.NewScramClientNonce(p.Mech, p.Authzid, p.User, p.Password, p.Nonce)
	} else {
		s.c = sasl.NewScramClient(p.Mech, p.Authzid, p.User, p.Password, nil)
	}
	return s, nil
}

// First returns the client-first-message: AUTH SCRAM-SHA-256 <it>.
func (s *Scram) First() (Output, error) {
	if s.step != 0 {
		return Output{}, errors.New("authstr: SCRAM: First called twice")
	}
	_, first, err := s.c.Start()
	if err != nil {
		return Output{}, err
	}
	s.step = 1
	d, _ := describeScram(first, s.o)
	d.note("send it as AUTH %s <this>, then give tern auth the server's 334 line", s.mech)
	return Output{Lines: []string{b64(first)}, Explain: []Description{d}}, nil
}

// Want names the server message Next expects; "" when the exchange is over.
func (s *Scram) Want() string {
	switch s.step {
	case 1:
		return "server-first-message"
	case 2:
		return "server-final-message"
	}
	return ""
}

// Done reports whether the exchange is over (the server's signature verified).
func (s *Scram) Done() bool { return s.step == 3 }

// Next takes the server's next message as typed: base64, with or without the "334 ", or the
// raw SCRAM text ("r=...", "v=...", "e=..."). An empty message (the server's "334 " when AUTH
// had no initial response) gives the client-first-message again.
func (s *Scram) Next(line string) (Output, error) {
	want := s.Want()
	if want == "" {
		return Output{}, errors.New("authstr: SCRAM: the exchange is over")
	}
	msg, asRaw, err := serverMessage(line, func(s string) bool {
		for _, p := range []string{"r=", "v=", "e=", "m="} {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return Output{}, fmt.Errorf("%s: %w (or raw SCRAM text: r=..., v=...)", want, err)
	}
	in, ok := describeScram(msg, s.o)
	if len(msg) > 0 && !ok {
		return Output{}, fmt.Errorf("%s: %q is not a SCRAM message", want, truncate(Escape(msg)))
	}
	if e, isErr := strings.CutPrefix(string(msg), "e="); isErr {
		s.step = 3
		return Output{}, fmt.Errorf("the server refused: e=%s%s", Escape([]byte(e)), scramErrorMeaning(e))
	}
	resp, err := s.c.Next(msg)
	if err != nil {
		if s.step == 2 {
			s.step = 3
			return Output{}, fmt.Errorf("the server's signature did not verify: the server did not prove that it knows the password (wrong password, or not the server you think): %w", err)
		}
		return Output{}, err
	}
	if len(msg) == 0 {
		d, _ := describeScram(resp, s.o)
		d.note("the server sent an empty challenge (AUTH without initial response): this is the client-first-message again")
		return Output{Lines: []string{b64(resp)}, Explain: []Description{d}}, nil
	}
	in.add("given as", givenAs(asRaw))
	if s.step == 1 {
		s.step = 2
		inputs := Description{Title: "SCRAM proof inputs (RFC 5802 §3)"}
		inputs.add("password (SASLprep)", s.o.secretField(s.password))
		inputs.add("SaltedPassword", "Hi(password, salt, iterations): PBKDF2 with HMAC-"+strings.TrimPrefix(s.mech, "SCRAM-"))
		inputs.add("AuthMessage", "client-first-message-bare , server-first-message , client-final-message-without-proof")
		inputs.add("ClientProof", "ClientKey XOR HMAC(H(ClientKey), AuthMessage), ClientKey = HMAC(SaltedPassword, \"Client Key\")")
		out, _ := describeScram(resp, s.o)
		out.note("send it, then give tern auth the server's next 334 line")
		return Output{Lines: []string{b64(resp)}, Explain: []Description{in, inputs, out}}, nil
	}
	s.step = 3
	in.note("verified: the server signature matches, so the server knows the password (or its stored keys)")
	done := Description{Title: "SCRAM: the empty response that ends the exchange (RFC 4954 §4); the server answers 235"}
	return Output{Lines: []string{string(resp)}, Explain: []Description{in, done}}, nil
}
