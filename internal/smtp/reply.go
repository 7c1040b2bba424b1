// Package smtp owns the SMTP wire format and nothing else: bounded line reading (CRLF only, bare
// CR and LF refused), command and argument parsing, addresses, ESMTP parameters and xtext, replies
// with their enhanced status codes, and the DATA reader that unstuffs dots (and, with the text
// checker BDAT uses, refuses bare CR, bare LF and NUL in message text). It knows no policy,
// does no logging and keeps no session state; the server and client packages build on it.
package smtp

import (
	"strconv"
	"strings"
)

// Reply codes (RFC 5321 §4.2.3), named by meaning so handlers never write a bare number.
const (
	CodeHelp                = 214
	CodeReady               = 220
	CodeClosing             = 221
	CodeAuthOK              = 235
	CodeOK                  = 250
	CodeCannotVerify        = 252
	CodeAuthChallenge       = 334 // RFC 4954 §4: a server challenge, base64 text
	CodeStartInput          = 354
	CodeUnavailable         = 421
	CodeMailboxBusy         = 450
	CodeLocalError          = 451
	CodeInsufficientStorage = 452
	CodeTempUnavailable     = 454 // RFC 4954 §6: temporary authentication failure; RFC 3207 §4: TLS not available
	CodeSyntaxError         = 500
	CodeParamSyntax         = 501
	CodeNotImplemented      = 502
	CodeBadSequence         = 503
	CodeParamNotImplemented = 504
	CodeNoMail              = 521 // RFC 7504: the server does not accept mail (here: any more, on this connection)
	CodeAuthRequired        = 530 // RFC 4954 §6: authentication required
	CodeAuthFailed          = 535 // RFC 4954 §6: authentication credentials invalid
	CodeEncryptionRequired  = 538 // RFC 4954 §6: encryption required for the mechanism
	CodeMailboxUnavailable  = 550
	CodeExceededStorage     = 552
	CodeMailboxNameInvalid  = 553
	CodeTransactionFailed   = 554
	CodeParamsNotRecognized = 555
	CodeDomainNoMail        = 556 // RFC 7505 §4.2: the domain does not accept mail (null MX)
)

// ETRN reply codes (RFC 1985 §5). 252 shares its number with CodeCannotVerify (VRFY).
const (
	CodeETRNNoMessages = 251 // OK, no messages waiting for node
	CodeETRNStarted    = 252 // OK, pending messages for node started
	CodeETRNUnable     = 458 // unable to queue messages for node
	CodeETRNNotAllowed = 459 // node not allowed
)

// Enhanced status codes (RFC 3463, registry of RFC 5248) without their class digit: the class
// (2, 4 or 5) always follows the reply code, so a Reply (and a delivery.Error) carries only
// "subject.detail", and Enhanced adds the class. The same detail serves a temporary and a
// permanent failure: EnhNoRoute is 4.4.4 with a 451 and 5.4.4 with a 550.
const (
	EnhOther            = "0.0"  // X.0.0 other undefined status
	EnhSenderOK         = "1.0"  // 2.1.0 originator ok
	EnhBadDestMailbox   = "1.1"  // X.1.1 bad destination mailbox address (user unknown)
	EnhBadDestSystem    = "1.2"  // X.1.2 bad destination system address
	EnhBadDestSyntax    = "1.3"  // X.1.3 bad destination mailbox address syntax
	EnhDestOK           = "1.5"  // 2.1.5 destination address valid
	EnhBadSenderSyntax  = "1.7"  // X.1.7 bad sender's mailbox address syntax
	EnhNullMX           = "1.10" // X.1.10 recipient address has null MX (RFC 7505 §4.2)
	EnhMailboxFull      = "2.2"  // X.2.2 mailbox full
	EnhSystemOther      = "3.0"  // X.3.0 other or undefined mail system status
	EnhSystemFull       = "3.1"  // X.3.1 mail system full
	EnhNotAccepting     = "3.2"  // X.3.2 system not accepting network messages
	EnhMsgTooBig        = "3.4"  // X.3.4 message too big for system
	EnhRoutingOther     = "4.0"  // X.4.0 other or undefined network or routing status
	EnhNoAnswer         = "4.1"  // X.4.1 no answer from host
	EnhBadConnection    = "4.2"  // X.4.2 bad connection
	EnhDNSFailure       = "4.3"  // X.4.3 directory server failure
	EnhNoRoute          = "4.4"  // X.4.4 unable to route
	EnhLoop             = "4.6"  // X.4.6 routing loop detected
	EnhProtoOther       = "5.0"  // X.5.0 other or undefined protocol status
	EnhInvalidCommand   = "5.1"  // X.5.1 invalid command
	EnhSyntax           = "5.2"  // X.5.2 syntax error
	EnhTooManyRcpts     = "5.3"  // X.5.3 too many recipients
	EnhInvalidArgs      = "5.4"  // X.5.4 invalid command arguments
	EnhMediaOther       = "6.0"  // X.6.0 other or undefined media error
	EnhConversion       = "6.3"  // X.6.3 conversion required but not supported
	EnhNonASCIIAddr     = "6.7"  // X.6.7 non-ASCII addresses not permitted (RFC 6531)
	EnhSecurityOther    = "7.0"  // X.7.0 other or undefined security status
	EnhNotAuthorized    = "7.1"  // X.7.1 delivery not authorized, message refused
	EnhNoTLS            = "7.4"  // X.7.4 security features not supported
	EnhCryptoFailure    = "7.5"  // X.7.5 cryptographic failure
	EnhReverseDNS       = "7.25" // X.7.25 reverse DNS validation failed (RFC 7372 §3.3)
	EnhBadCredentials   = "7.8"  // X.7.8 authentication credentials invalid (RFC 4954 §6)
	EnhEncryptionNeeded = "7.11" // X.7.11 encryption required for requested authentication mechanism
	EnhRequireTLS       = "7.30" // X.7.30 REQUIRETLS support required (RFC 8689 §5)
)

// Reply is one SMTP reply. Text may hold several lines separated by "\n"; each is sent with the
// code and, when Enh is set, the enhanced status code.
type Reply struct {
	Code int
	Enh  string // "subject.detail", e.g. EnhBadDestMailbox; empty for greeting and EHLO replies
	Text string
}

// R builds a Reply.
func R(code int, enh, text string) Reply { return Reply{Code: code, Enh: enh, Text: text} }

// Enhanced returns the full enhanced status code ("5.1.1"), or "" when the reply has none.
func (r Reply) Enhanced() string { return Enhanced(r.Code, r.Enh) }

// Enhanced is the full enhanced status code ("5.1.1") of enh ("subject.detail") in a reply
// with code: the class is the code's first digit. "" when enh is.
func Enhanced(code int, enh string) string {
	if enh == "" {
		return ""
	}
	return strconv.Itoa(code/100) + "." + enh
}

// Positive reports whether the reply is a 2xx or 3xx.
func (r Reply) Positive() bool { return r.Code < 400 }

// Append appends the reply in wire form (CRLF line ends, "-" continuations) to b.
func (r Reply) Append(b []byte) []byte {
	enh := r.Enhanced()
	text := r.Text
	for {
		line, rest, more := strings.Cut(text, "\n")
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if more {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if enh != "" {
			b = append(b, enh...)
			if line != "" {
				b = append(b, ' ')
			}
		}
		b = append(b, line...)
		b = append(b, '\r', '\n')
		if !more {
			return b
		}
		text = rest
	}
}

// String is the reply in wire form.
func (r Reply) String() string { return string(r.Append(nil)) }
