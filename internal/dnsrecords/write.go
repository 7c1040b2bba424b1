package dnsrecords

import (
	"fmt"
	"io"
	"strings"
)

// Write prints s as a zone-file fragment: each record after its comment, the notes, and the
// MTA-STS policy file (commented out, since it is served over HTTPS, not DNS).
func Write(w io.Writer, s Set) error {
	var b strings.Builder
	fmt.Fprintf(&b, "; The DNS records of %s, for its zone file (tern dns records %s).\n", s.Params.Domain, s.Params.Domain)
	for _, r := range s.Records {
		if r.Comment != "" {
			b.WriteString("\n")
			writeComment(&b, r.Comment)
		}
		b.WriteString(r.Zone() + "\n")
	}
	if len(s.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range s.Notes {
			writeComment(&b, n)
		}
	}
	b.WriteString("\n; The MTA-STS policy, served at https://mta-sts." + s.Params.Domain + "/.well-known/mta-sts.txt:\n")
	for _, l := range strings.SplitAfter(strings.TrimSuffix(s.Policy, "\n"), "\n") {
		b.WriteString(";   " + l)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeComment(b *strings.Builder, c string) {
	for _, l := range strings.Split(c, "\n") {
		b.WriteString("; " + l + "\n")
	}
}
