// Package tlsrpt holds what SMTP TLS Reporting (RFC 8460) needs: the outcome of one outbound
// TLS session as remote delivery records it, the result types of §4.3, and the JSON report
// built from a day's outcomes for a policy domain.
package tlsrpt
