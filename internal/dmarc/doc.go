// Package dmarc evaluates DMARC (RFC 7489) for a received message: it finds the policy of the
// From domain (or of its organisational domain, by the Public Suffix List), checks whether SPF
// or DKIM passed for an aligned domain, and says what the policy asks for. It decides nothing
// about what tern does with that (package policy does) and keeps nothing (the reports store
// records each Evaluation for the aggregate reports of RFC 7489 §7.2).
package dmarc
