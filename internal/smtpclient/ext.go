package smtpclient

import (
	"slices"
	"strconv"
	"strings"
)

// Extensions are the service extensions an EHLO reply advertised (RFC 5321 §4.1.1.1).
type Extensions struct {
	// Keywords maps every keyword, upper-cased, to its parameters as sent ("" for none).
	Keywords map[string]string

	Size                int64    // SIZE (RFC 1870): the largest message, 0 for no stated limit
	Auth                []string // AUTH (RFC 4954) mechanisms, upper-cased, from "AUTH" and "AUTH="
	Pipelining          bool     // PIPELINING (RFC 2920)
	StartTLS            bool     // STARTTLS (RFC 3207)
	EightBitMIME        bool     // 8BITMIME (RFC 6152)
	SMTPUTF8            bool     // SMTPUTF8 (RFC 6531)
	Chunking            bool     // CHUNKING (RFC 3030): BDAT
	BinaryMIME          bool     // BINARYMIME (RFC 3030)
	DSN                 bool     // DSN (RFC 3461)
	EnhancedStatusCodes bool     // ENHANCEDSTATUSCODES (RFC 2034)
}

// Has reports whether keyword was advertised.
func (e Extensions) Has(keyword string) bool {
	_, ok := e.Keywords[strings.ToUpper(keyword)]
	return ok
}

// HasAuth reports whether the AUTH mechanism mech was advertised.
func (e Extensions) HasAuth(mech string) bool {
	return slices.Contains(e.Auth, strings.ToUpper(mech))
}

// parseExtensions reads an EHLO reply's text: the first line is the server's name, each other
// line a keyword and its parameters.
func parseExtensions(text string) Extensions {
	e := Extensions{Keywords: map[string]string{}}
	lines := strings.Split(text, "\n")
	for _, line := range lines[1:] {
		kw, params, _ := strings.Cut(strings.TrimSpace(line), " ")
		kw = strings.ToUpper(kw)
		if kw == "" {
			continue
		}
		// The draft form "AUTH=LOGIN PLAIN" that old servers send for old Outlooks.
		if rest, ok := strings.CutPrefix(kw, "AUTH="); ok {
			kw, params = "AUTH", strings.TrimSpace(rest+" "+params)
		}
		if prev, ok := e.Keywords[kw]; ok && prev != "" && params != prev {
			e.Keywords[kw] = prev + " " + params
		} else {
			e.Keywords[kw] = params
		}
		switch kw {
		case "SIZE":
			if n, err := strconv.ParseInt(strings.TrimSpace(params), 10, 64); err == nil && n > 0 {
				e.Size = n
			}
		case "AUTH":
			for _, m := range strings.Fields(params) {
				if m = strings.ToUpper(m); !slices.Contains(e.Auth, m) {
					e.Auth = append(e.Auth, m)
				}
			}
		case "PIPELINING":
			e.Pipelining = true
		case "STARTTLS":
			e.StartTLS = true
		case "8BITMIME":
			e.EightBitMIME = true
		case "SMTPUTF8":
			e.SMTPUTF8 = true
		case "CHUNKING":
			e.Chunking = true
		case "BINARYMIME":
			e.BinaryMIME = true
		case "DSN":
			e.DSN = true
		case "ENHANCEDSTATUSCODES":
			e.EnhancedStatusCodes = true
		}
	}
	return e
}
