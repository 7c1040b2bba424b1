package policy

// Headers decides which messages get the Date: and Message-ID: fields they lack (RFC 6409
// §8.2, §8.3: a submission server may add them). Only those of authenticated clients: they are
// our users', as Postfix's cleanup adds the fields only for the clients in
// local_header_rewrite_clients (a submission setup lists permit_sasl_authenticated there). Mail
// from anyone else, from other servers on the MX port above all, is stored as it was sent: its
// sender may have signed it (DKIM) over the very fields it lacks.
type Headers struct {
	// AddMissing enables it (auth.add_missing_headers).
	AddMissing bool
}

// AddMissingHeaders reports whether a message from c gets the fields it lacks.
func (h Headers) AddMissingHeaders(c Client) bool { return h.AddMissing && c.Authenticated }
