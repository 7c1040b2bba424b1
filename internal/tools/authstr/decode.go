package authstr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tern-mail/tern/internal/sasl"
)

// Decode is `tern auth decode`: it decodes a base64 string (a "334 " copied along is dropped;
// "*" and "=" are the cancel and the empty initial response of RFC 4954 §4) and says what it
// holds. The only error is input that is not base64.
func Decode(s string, o Options) (Description, error) {
	switch s = trimReply(s); s {
	case "*":
		return Description{Title: "cancel (RFC 4954 §4): the client abandons the exchange; the server answers 501", Text: "*"}, nil
	case "=":
		return Description{Title: "empty initial response (RFC 4954 §4): AUTH MECH = sends zero octets"}, nil
	}
	msg, err := decodeBase64(s)
	if err != nil {
		return Description{}, err
	}
	return Describe(msg, o), nil
}

// Describe says what a decoded SASL message is, trying every mechanism tern knows, most
// specific first.
func Describe(msg []byte, o Options) Description {
	if len(msg) == 0 {
		return Description{Title: "empty message: an empty challenge (\"334 \": send your initial response, or the next step), or the empty response that ends SCRAM and DIGEST-MD5"}
	}
	for _, try := range []func([]byte, Options) (Description, bool){
		describeGSSAPI, describeNTLM, describePlain, describeXOAuth2, describeOAuthBearer, describeOAuthError,
		describeScram, describeDigest, describeCRAMChallenge, describeCRAMResponse, describeLoginPrompt,
	} {
		if d, ok := try(msg, o); ok {
			return d
		}
	}
	if utf8.Valid(msg) && !bytes.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Description{
			Title: "text: no mechanism recognised",
			Text:  Escape(msg),
			Notes: []string{"a LOGIN user name or password (the answer to 334 VXNlcm5hbWU6 or 334 UGFzc3dvcmQ6) is plain text like this"},
		}
	}
	return Description{Title: fmt.Sprintf("binary data (%d octets): no mechanism recognised", len(msg)), Text: Escape(msg)}
}

// describePlain recognises a PLAIN message (RFC 4616 §2): exactly two NULs.
func describePlain(msg []byte, o Options) (Description, bool) {
	f := bytes.Split(msg, []byte{0})
	if len(f) != 3 {
		return Description{}, false
	}
	authzid, authcid, password := f[0], f[1], string(f[2])
	d := Description{
		Title: "PLAIN message (RFC 4616 §2): authzid NUL authcid NUL password",
		Text:  Escape(authzid) + `\0` + Escape(authcid) + `\0` + o.secret(password),
	}
	if len(authzid) == 0 {
		d.add("authzid", "(empty: act as the authcid)")
	} else {
		d.add("authzid", Escape(authzid)+" (the identity to act as)")
	}
	d.add("authcid", Escape(authcid)+" (the user name to log in with)")
	d.add("password", o.secretField(password))
	switch {
	case len(authcid) == 0:
		d.note("the authcid is empty: servers refuse it")
	case len(password) == 0:
		d.note("the password is empty: servers refuse it")
	case len(authzid) > 0 && !bytes.EqualFold(authzid, authcid):
		d.note("an authzid other than the authcid asks to act as another user: servers refuse it unless told to allow it")
	}
	return d, true
}

// describeXOAuth2 recognises XOAUTH2's "user=" U ^A "auth=Bearer " T ^A ^A.
func describeXOAuth2(msg []byte, o Options) (Description, bool) {
	s := string(msg)
	user, rest, ok := strings.Cut(s, "\x01")
	if !ok || !strings.HasPrefix(user, "user=") || !strings.HasPrefix(rest, "auth=") {
		return Description{}, false
	}
	auth, rest, _ := strings.Cut(rest, "\x01")
	scheme, token, _ := strings.Cut(strings.TrimPrefix(auth, "auth="), " ")
	d := Description{
		Title: "XOAUTH2 initial response (Google's, also Microsoft 365): user=U ^A auth=Bearer TOKEN ^A ^A",
		Text:  Escape([]byte(user)) + `\x01auth=` + Escape([]byte(scheme)) + " " + o.secret(token) + Escape([]byte("\x01"+rest)),
	}
	d.add("user", Escape([]byte(strings.TrimPrefix(user, "user=")))+" (the mailbox to act as)")
	d.add("scheme", Escape([]byte(scheme)))
	d.add("token", o.secretField(token))
	if rest != "\x01" {
		d.note("the message should end with ^A ^A after the token")
	}
	return d, true
}

// gs2HeaderRE matches a GS2 header (RFC 5801 §4), as SCRAM and OAUTHBEARER start.
var gs2HeaderRE = regexp.MustCompile(`^(n|y|p=[A-Za-z0-9.-]+),(a=[^,]*)?,`)

// describeGS2 adds the fields of a GS2 header.
func describeGS2(d *Description, flag, authzid string) {
	switch {
	case flag == "n":
		d.add("gs2 flag", "n (the client does not do channel binding)")
	case flag == "y":
		d.add("gs2 flag", "y (the client could bind, but thinks the server cannot: a server that offered -PLUS must refuse it)")
	default:
		d.add("gs2 flag", flag+" (channel binding to the TLS connection, type "+strings.TrimPrefix(flag, "p=")+")")
	}
	if a, ok := strings.CutPrefix(authzid, "a="); ok {
		d.add("authzid", Escape([]byte(unescapeSASLName(a)))+" (the identity to act as)")
	} else {
		d.add("authzid", "(none: act as the user)")
	}
}

// unescapeSASLName undoes RFC 5801's =2C and =3D.
func unescapeSASLName(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}

// describeOAuthBearer recognises an OAUTHBEARER client message (RFC 7628 §3.1): a GS2 header,
// ^A, key=value pairs each ended by ^A, and ^A; or the lone ^A that answers an error.
func describeOAuthBearer(msg []byte, o Options) (Description, bool) {
	s := string(msg)
	if s == "\x01" {
		return Description{Title: "OAUTHBEARER: the client's lone ^A after an error challenge (RFC 7628 §3.2.3): the server now fails the exchange", Text: `\x01`}, true
	}
	m := gs2HeaderRE.FindStringSubmatch(s)
	if m == nil || !strings.HasPrefix(s[len(m[0]):], "\x01") {
		return Description{}, false
	}
	d := Description{Title: "OAUTHBEARER initial response (RFC 7628 §3.1): GS2 header ^A key=value ^A ... ^A"}
	describeGS2(&d, m[1], m[2])
	text := Escape([]byte(m[0])) + `\x01`
	rest := s[len(m[0])+1:]
	for rest != "" {
		kv, after, ok := strings.Cut(rest, "\x01")
		if !ok {
			d.note("the message does not end with ^A")
			text += Escape([]byte(rest))
			break
		}
		rest = after
		if kv == "" {
			text += `\x01`
			if rest != "" {
				d.note("octets after the closing ^A")
				text += Escape([]byte(rest))
			}
			break
		}
		key, value, _ := strings.Cut(kv, "=")
		switch key {
		case "auth":
			scheme, token, _ := strings.Cut(value, " ")
			text += "auth=" + Escape([]byte(scheme)) + " " + o.secret(token) + `\x01`
			d.add("auth", Escape([]byte(scheme))+" "+o.secretField(token))
		case "host":
			text += Escape([]byte(kv)) + `\x01`
			d.add("host", Escape([]byte(value))+" (the server the client connected to)")
		case "port":
			text += Escape([]byte(kv)) + `\x01`
			d.add("port", Escape([]byte(value)))
		default:
			text += Escape([]byte(kv)) + `\x01`
			d.add(Escape([]byte(key)), Escape([]byte(value)))
		}
	}
	d.Text = text
	return d, true
}

// describeOAuthError recognises the JSON error challenge of OAUTHBEARER (RFC 7628 §3.2.2)
// and XOAUTH2.
func describeOAuthError(msg []byte, o Options) (Description, bool) {
	var m map[string]any
	if len(msg) == 0 || msg[0] != '{' || json.Unmarshal(msg, &m) != nil || m["status"] == nil {
		return Description{}, false
	}
	d := Description{
		Title: "OAuth error challenge (RFC 7628 §3.2.2; XOAUTH2 alike): the token was refused",
		Text:  Escape(msg),
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d.add(Escape([]byte(k)), Escape([]byte(fmt.Sprint(m[k]))))
	}
	d.note("answer with an empty line (XOAUTH2) or with AQ== (OAUTHBEARER's ^A); the server then fails the exchange")
	return d, true
}

// describeScram recognises the four SCRAM messages (RFC 5802 §7).
func describeScram(msg []byte, o Options) (Description, bool) {
	s := string(msg)
	if !utf8.ValidString(s) {
		return Description{}, false
	}
	attrs := func(s string) (map[string]string, []string) {
		m := map[string]string{}
		var order []string
		for _, f := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(f, "=")
			if _, dup := m[k]; !dup {
				order = append(order, k)
			}
			m[k] = v
		}
		return m, order
	}
	if g := gs2HeaderRE.FindStringSubmatch(s); g != nil {
		rest := s[len(g[0]):]
		a, order := attrs(rest)
		if len(order) < 2 || order[0] != "n" && order[0] != "m" || a["r"] == "" {
			return Description{}, false
		}
		d := Description{Title: "SCRAM client-first-message (RFC 5802 §5.1): gs2-header n=user,r=client-nonce", Text: Escape(msg)}
		describeGS2(&d, g[1], g[2])
		d.add("user", Escape([]byte(unescapeSASLName(a["n"]))))
		d.add("nonce", Escape([]byte(a["r"]))+" (the client's part)")
		if _, ok := a["m"]; ok {
			d.note("m= is a mandatory extension: servers that do not know it fail the exchange")
		}
		return d, true
	}
	a, order := attrs(s)
	switch {
	case len(order) >= 3 && order[0] == "r" && order[1] == "s" && order[2] == "i":
		d := Description{Title: "SCRAM server-first-message (RFC 5802 §5.1): r=nonce,s=salt,i=iterations", Text: Escape(msg)}
		d.add("nonce", Escape([]byte(a["r"]))+" (the client's nonce, then the server's part)")
		if salt, err := decodeBase64(a["s"]); err == nil {
			d.add("salt", fmt.Sprintf("%s (%d octets)", Escape([]byte(a["s"])), len(salt)))
		} else {
			d.add("salt", Escape([]byte(a["s"]))+" (not base64)")
		}
		d.add("iterations", Escape([]byte(a["i"]))+" (of PBKDF2: SaltedPassword = Hi(password, salt, i))")
		if n, err := strconv.Atoi(a["i"]); err == nil && n < 4096 {
			d.note("fewer than the 4096 iterations RFC 7677 §4 asks for")
		}
		return d, true
	case len(order) >= 3 && order[0] == "c" && order[1] == "r" && order[len(order)-1] == "p":
		d := Description{Title: "SCRAM client-final-message (RFC 5802 §5.1): c=binding,r=nonce,p=proof", Text: Escape(msg)}
		if cb, err := decodeBase64(a["c"]); err == nil {
			d.add("binding", fmt.Sprintf("%s = base64(%q): the GS2 header again%s", a["c"], cb, map[bool]string{true: "", false: ", with the TLS channel's binding data"}[len(cb) < 8 || cb[0] != 'p']))
		} else {
			d.add("binding", Escape([]byte(a["c"]))+" (not base64)")
		}
		d.add("nonce", Escape([]byte(a["r"])))
		d.add("proof", Escape([]byte(a["p"]))+" (ClientKey XOR HMAC(StoredKey, AuthMessage): proves the password, reveals nothing)")
		return d, true
	case len(order) >= 1 && order[0] == "v" && a["v"] != "":
		d := Description{Title: "SCRAM server-final-message (RFC 5802 §5.1): v=server-signature", Text: Escape(msg)}
		d.add("verifier", Escape([]byte(a["v"]))+" (HMAC(ServerKey, AuthMessage): proves the server knows the password)")
		d.note("the client checks it, then answers with an empty line")
		return d, true
	case len(order) == 1 && order[0] == "e" && a["e"] != "":
		d := Description{Title: "SCRAM server-final-message with an error (RFC 5802 §7)", Text: Escape(msg)}
		d.add("error", Escape([]byte(a["e"]))+scramErrorMeaning(a["e"]))
		return d, true
	}
	return Description{}, false
}

// scramErrorMeaning explains RFC 5802 §7's server-error values.
func scramErrorMeaning(e string) string {
	switch e {
	case "invalid-proof":
		return " (wrong password)"
	case "unknown-user":
		return " (no such user)"
	case "channel-bindings-dont-match":
		return " (the TLS channel is not the one the client bound to: a proxy in between?)"
	case "server-does-support-channel-binding":
		return " (the client said y, but the server offers -PLUS: the mechanism list was tampered with)"
	}
	return ""
}

// describeDigest recognises a DIGEST-MD5 challenge, response or response-auth (RFC 2831).
func describeDigest(msg []byte, o Options) (Description, bool) {
	list, err := sasl.ParseDigestMD5(msg)
	if err != nil || len(list) == 0 {
		return Description{}, false
	}
	has := func(name string) bool {
		return slices.ContainsFunc(list, func(d sasl.DigestDirective) bool { return d.Name == name })
	}
	var d Description
	switch {
	case len(list) == 1 && list[0].Name == "rspauth":
		d.Title = "DIGEST-MD5 response-auth (RFC 2831 §2.1.3): the server's proof that it knows the password"
		d.note("the client checks it, then answers with an empty line")
	case has("username") && has("response"):
		d.Title = "DIGEST-MD5 digest-response (RFC 2831 §2.1.2)"
	case has("nonce"):
		d.Title = "DIGEST-MD5 digest-challenge (RFC 2831 §2.1.1)"
		if !has("realm") {
			d.note("no realm offered: the client may name its own, or none")
		}
	default:
		return Description{}, false
	}
	d.Text = Escape(msg)
	for _, dd := range list {
		d.add(dd.Name, Escape([]byte(dd.Value))+digestMeaning(dd))
		switch {
		case dd.Name == "qop" && has("username") && !strings.EqualFold(dd.Value, "auth"):
			d.note("qop=%s asks for a security layer after AUTH; tern's server offers only qop=auth and refuses it", dd.Value)
		case dd.Name == "algorithm" && !strings.EqualFold(dd.Value, "md5-sess"):
			d.note("RFC 2831 requires algorithm=md5-sess")
		}
	}
	return d, true
}

// digestMeaning explains a DIGEST-MD5 directive (RFC 2831 §2.1.1, §2.1.2).
func digestMeaning(d sasl.DigestDirective) string {
	switch d.Name {
	case "realm":
		return " (the user name's domain of validity)"
	case "nonce":
		return " (the server's random value)"
	case "cnonce":
		return " (the client's random value)"
	case "nc":
		return " (how many responses with this nonce, in hex)"
	case "qop":
		return " (quality of protection: auth = authentication only, auth-int = with integrity, auth-conf = with encryption)"
	case "charset":
		return " (names and password in UTF-8, not ISO 8859-1)"
	case "algorithm":
		return " (A1 hashes H(user:realm:password) with the nonces)"
	case "cipher":
		return " (ciphers for qop=auth-conf)"
	case "maxbuf":
		return " (largest security-layer buffer)"
	case "digest-uri":
		return " (service/host: the server the client means)"
	case "response":
		return " (HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2)))) with A2 = AUTHENTICATE:digest-uri)"
	case "rspauth":
		return " (the same computation with A2 = :digest-uri)"
	case "authzid":
		return " (the identity to act as)"
	case "username":
		return " (the user name to log in with)"
	}
	return ""
}

// cramChallengeRE matches a CRAM challenge: a msg-id (RFC 2195 §2), "<random.time@host>" as
// tern and most servers make it.
var cramChallengeRE = regexp.MustCompile(`^<([^<>@\s]+)@([^<>@\s]+)>$`)

// describeCRAMChallenge recognises a CRAM-MD5 or CRAM-SHA1 challenge.
func describeCRAMChallenge(msg []byte, o Options) (Description, bool) {
	m := cramChallengeRE.FindSubmatch(msg)
	if m == nil {
		return Description{}, false
	}
	d := Description{Title: "CRAM-MD5 or CRAM-SHA1 challenge (RFC 2195 §2): a unique <...@host> string the server made up", Text: Escape(msg)}
	d.add("host", Escape(m[2]))
	// Most servers write "<random.unixtime@host>" (RFC 2195's example, tern, qmail, Dovecot).
	if _, t, ok := strings.Cut(string(m[1]), "."); ok {
		if sec, err := strconv.ParseInt(t, 10, 64); err == nil && sec > 631152000 && sec < 4102444800 {
			d.add("time", time.Unix(sec, 0).UTC().Format(time.RFC3339)+" (if the part after the dot is a Unix time, as usual)")
		}
	}
	d.note("answer: user SP HEX(HMAC(password, challenge)), in base64 (tern auth cram-md5 USER PASS CHALLENGE)")
	return d, true
}

// cramResponseRE matches a CRAM response: user SP hex digest (MD5: 32, SHA-1: 40 digits).
var cramResponseRE = regexp.MustCompile(`^(\S+) ([0-9a-f]{32}|[0-9a-f]{40})$`)

// describeCRAMResponse recognises a CRAM-MD5 or CRAM-SHA1 response.
func describeCRAMResponse(msg []byte, o Options) (Description, bool) {
	m := cramResponseRE.FindSubmatch(msg)
	if m == nil || !utf8.Valid(m[1]) {
		return Description{}, false
	}
	mech, hash := "CRAM-MD5", "MD5"
	if len(m[2]) == 40 {
		mech, hash = "CRAM-SHA1", "SHA-1"
	}
	d := Description{Title: mech + " response (RFC 2195 §2): user SP HEX(HMAC-" + hash + "(password, challenge))", Text: Escape(msg)}
	d.add("user", Escape(m[1]))
	d.add("digest", string(m[2]))
	return d, true
}

// describeLoginPrompt recognises the server's LOGIN prompts (draft-murchison-sasl-login).
func describeLoginPrompt(msg []byte, o Options) (Description, bool) {
	p := strings.TrimSuffix(string(msg), "\x00")
	var what string
	switch strings.ToLower(p) {
	case "username:", "user name":
		what = "user name"
	case "password:", "password":
		what = "password"
	default:
		return Description{}, false
	}
	return Description{
		Title: "LOGIN prompt (draft-murchison-sasl-login): the server asks for the " + what,
		Text:  Escape(msg),
		Notes: []string{"answer with the " + what + " in base64 (tern auth login USER PASS prints both)"},
	}, true
}
