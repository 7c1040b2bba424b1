// Package tlsrpt holds what SMTP TLS Reporting (RFC 8460) needs: the outcome of one outbound
// TLS session as remote delivery records it, the result types of §4.3, the JSON report
// built from a day's outcomes for a policy domain (report.go, and CheckReport, which checks
// one against §4.4), and the TLSRPT record of §3 that says where reports go (record.go). It
// neither looks records up nor sends reports (package reports does).
package tlsrpt
