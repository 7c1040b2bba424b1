// Package reports makes and sends the daily DMARC aggregate reports (RFC 7489 §7.2) and SMTP
// TLS reports (RFC 8460) of a tern server.
//
// # Recording
//
// The Recorder receives one dmarc.Evaluation per judged inbound message and one
// tlsrpt.Outcome per outbound TLS session, counts them in memory per UTC day, policy domain
// and row (what a report lists separately), and adds the counts to the account store every
// minute and at shutdown. Recording is a map update under a lock: it never waits for the
// store. A crash loses the counts since the last flush: a minute of statistics, never mail.
// Counts live in the account store so that the nodes sharing it add up into one report.
//
// # Sending
//
// The Sender takes a day's counts from the store (taking removes them, in one transaction, so
// a day is reported once, whichever node sends it), builds the report (XML per RFC 7489
// Appendix C; JSON per RFC 8460 §4.4), gzips it, and queues one message per destination from
// the null sender, with a From address of a local domain so that remote delivery DKIM-signs
// it. DMARC destinations are the mailto: URIs of the policy's rua=, honouring their "!size"
// limits, each in another organisational domain checked by the external destination
// verification of RFC 7489 §7.1; TLS destinations are the URIs of the domain's _smtp._tls
// record: mailto: ones get a message, https: ones a POST (RFC 8460 §5.2) through the client
// the Sender is given. What was sent, and what was skipped and why,
// is recorded for tern reports list. Run sends each day's reports after UTC midnight, with
// jitter; Send(ctx, true) sends today's so far too (tern reports send --now).
//
// The package decides nothing about the mail it reports on, and delivers nothing itself.
package reports
