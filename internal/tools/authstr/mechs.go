package authstr

import (
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/sasl"
)

// Plain is `tern auth plain`: the initial response of PLAIN (RFC 4616), one line.
func Plain(authzid, user, password string, o Options) (Output, error) {
	_, msg, err := sasl.NewPlainClient(authzid, user, password).Start()
	if err != nil {
		return Output{}, err
	}
	d, _ := describePlain(msg, o)
	d.note("send it as AUTH PLAIN <this>, or after AUTH PLAIN in answer to the empty 334")
	return Output{Lines: []string{b64(msg)}, Explain: []Description{d}}, nil
}

// Login is `tern auth login`: the answers to LOGIN's two prompts, two lines.
func Login(user, password string, o Options) (Output, error) {
	c := sasl.NewLoginClient(user, password)
	if _, _, err := c.Start(); err != nil {
		return Output{}, err
	}
	var out Output
	for _, p := range []struct{ prompt, what, shown string }{
		{"Username:", "user name", Escape([]byte(user))},
		{"Password:", "password", o.secret(password)},
	} {
		answer, err := c.Next([]byte(p.prompt))
		if err != nil {
			return Output{}, err
		}
		out.Lines = append(out.Lines, b64(answer))
		out.Explain = append(out.Explain, Description{
			Title: fmt.Sprintf("LOGIN answer to 334 %s (%q): the %s", b64([]byte(p.prompt)), p.prompt, p.what),
			Text:  p.shown,
		})
	}
	return out, nil
}

// CRAM is `tern auth cram-md5` and `cram-sha1` (mech sasl.CRAMMD5 or sasl.CRAMSHA1). The
// challenge is base64 or, as gen-auth documents, raw text when it starts with '<' (RFC 2195's
// challenges are msg-ids); a "334 " copied along is dropped.
func CRAM(mech, user, password, challenge string, o Options) (Output, error) {
	msg, asRaw, err := serverMessage(challenge, func(s string) bool { return strings.HasPrefix(s, "<") })
	if err != nil {
		return Output{}, fmt.Errorf("%s challenge: %w (a raw challenge starts with '<')", mech, err)
	}
	c := sasl.NewCRAMClient(mech, user, password)
	if _, _, err := c.Start(); err != nil {
		return Output{}, err
	}
	resp, err := c.Next(msg)
	if err != nil {
		return Output{}, err
	}
	in, ok := describeCRAMChallenge(msg, o)
	if !ok {
		in = Description{Title: mech + " challenge", Text: Escape(msg)}
		in.note("not of the <...@host> form of RFC 2195 §2; the response is computed all the same")
	}
	in.Title = mech + " challenge (RFC 2195 §2)"
	in.Notes = nil
	in.add("given as", givenAs(asRaw))
	out, _ := describeCRAMResponse(resp, o)
	out.add("key", "the password, "+o.secretField(password))
	return Output{Lines: []string{b64(resp)}, Explain: []Description{in, out}}, nil
}

// DigestMD5 is `tern auth digest-md5`: the response to the server's challenge (base64 or raw,
// "334 " allowed), and the rspauth line the server must answer with, both in base64. Without
// p.Host, the digest-uri names the realm (p.Realm, or the first one offered), as curl does.
func DigestMD5(challenge string, p sasl.DigestMD5Params, o Options) (Output, error) {
	msg, asRaw, err := serverMessage(challenge, func(s string) bool { return strings.ContainsAny(s, `=",`) && !isBase64(s) })
	if err != nil {
		return Output{}, fmt.Errorf("DIGEST-MD5 challenge: %w", err)
	}
	in, ok := describeDigest(msg, o)
	if !ok {
		return Output{}, fmt.Errorf("DIGEST-MD5 challenge: %q is not a digest-challenge (RFC 2831 §2.1.1)", truncate(Escape(msg)))
	}
	in.add("given as", givenAs(asRaw))
	hostNote := ""
	if p.Host == "" {
		p.Host = p.Realm
		if p.Host == "" {
			list, _ := sasl.ParseDigestMD5(msg)
			for _, d := range list {
				if d.Name == "realm" {
					p.Host = d.Value
					break
				}
			}
		}
		if p.Host == "" {
			return Output{}, fmt.Errorf("DIGEST-MD5: the challenge offers no realm to take the host from: give --host (the server's name)")
		}
		hostNote = " (no --host: the realm)"
	}
	resp, rspauth, err := sasl.DigestMD5Response(msg, p)
	if err != nil {
		return Output{}, err
	}
	out, _ := describeDigest(resp, o)
	inputs := Description{Title: "DIGEST-MD5 digest inputs (RFC 2831 §2.1.2.1)"}
	list, _ := sasl.ParseDigestMD5(resp)
	get := func(name string) string {
		for _, d := range list {
			if d.Name == name {
				return Escape([]byte(d.Value))
			}
		}
		return "(none)"
	}
	inputs.add("username", get("username"))
	inputs.add("realm", get("realm"))
	inputs.add("password", o.secretField(p.Password))
	inputs.add("nonce", get("nonce"))
	inputs.add("cnonce", get("cnonce"))
	inputs.add("nc", get("nc"))
	inputs.add("qop", get("qop"))
	inputs.add("digest-uri", get("digest-uri")+hostNote)
	inputs.add("authzid", get("authzid"))
	inputs.add("A1", "H(username:realm:password) : nonce : cnonce [: authzid]")
	inputs.add("A2", "AUTHENTICATE:digest-uri (for rspauth: :digest-uri)")
	inputs.add("response", "HEX(H(HEX(H(A1)) : nonce : nc : cnonce : qop : HEX(H(A2))))")
	ra := []byte("rspauth=" + rspauth)
	last, _ := describeDigest(ra, o)
	last.Title = "DIGEST-MD5 response-auth the server must send back (RFC 2831 §2.1.3)"
	last.Notes = []string{"compare it with the server's next 334 line; if it matches, answer with an empty line"}
	return Output{Lines: []string{b64(resp), b64(ra)}, Explain: []Description{in, inputs, out, last}}, nil
}

// isBase64 reports whether s decodes as base64.
func isBase64(s string) bool {
	_, err := decodeBase64(s)
	return err == nil
}

// XOAuth2 is `tern auth xoauth2`: the XOAUTH2 initial response.
func XOAuth2(user, token string, o Options) (Output, error) {
	_, msg, err := sasl.NewXOAuth2Client(user, token).Start()
	if err != nil {
		return Output{}, err
	}
	d, _ := describeXOAuth2(msg, o)
	d.note("send it as AUTH XOAUTH2 <this>; a 334 in reply carries a JSON error: answer it with an empty line")
	return Output{Lines: []string{b64(msg)}, Explain: []Description{d}}, nil
}

// OAuthBearer is `tern auth oauthbearer`: the OAUTHBEARER initial response (RFC 7628 §3.1).
func OAuthBearer(user, token, host string, port int, o Options) (Output, error) {
	_, msg, err := sasl.NewOAuthBearerClient(user, token, host, port).Start()
	if err != nil {
		return Output{}, err
	}
	d, _ := describeOAuthBearer(msg, o)
	d.note("send it as AUTH OAUTHBEARER <this>; a 334 in reply carries a JSON error: answer it with AQ== (^A)")
	return Output{Lines: []string{b64(msg)}, Explain: []Description{d}}, nil
}
