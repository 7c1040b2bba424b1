package reports

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"
)

// reportMail is one report message before it is written: the parts that differ between DMARC and
// TLS reports.
type reportMail struct {
	From, To   string
	Date       time.Time
	MessageID  string // without angle brackets
	Domain     string // the policy domain
	Submitter  string // tern's hostname
	ReportID   string
	TLS        bool   // an RFC 8460 report (multipart/report, TLS-Report-* fields)
	Text       string // the human-readable part
	Filename   string // of the attachment
	Attachment []byte // gzip'd
}

// gzipped compresses b.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// attachmentName is the file name of RFC 7489 §7.2.1.1 and RFC 8460 §5.1:
//
//	filename = receiver "!" policy-domain "!" begin-timestamp "!" end-timestamp "." extension
func attachmentName(submitter, domain string, begin, end time.Time, ext string) string {
	return fmt.Sprintf("%s!%s!%d!%d.%s", submitter, domain, begin.Unix(), end.Unix(), ext)
}

// bytes writes the message: CRLF line ends, the attachment in base64 lines of 76.
//
// A DMARC report is multipart/mixed with the gzip'd XML as application/gzip (RFC 7489
// §7.2.1.1); a TLS report is multipart/report; report-type="tlsrpt" with the gzip'd JSON as
// application/tlsrpt+gzip, and carries TLS-Report-Domain and TLS-Report-Submitter (RFC 8460
// §5.3). Both have the Subject "Report Domain: D Submitter: S Report-ID: <ID>".
func (m reportMail) bytes() ([]byte, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	boundary := "=_tern_" + hex.EncodeToString(rnd[:])
	var b strings.Builder
	h := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	h("From", "<"+m.From+">")
	h("To", "<"+m.To+">")
	h("Date", m.Date.Format(time.RFC1123Z))
	h("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", m.Domain, m.Submitter, m.ReportID))
	h("Message-ID", "<"+m.MessageID+">")
	h("MIME-Version", "1.0")
	attType := "application/gzip"
	if m.TLS {
		h("TLS-Report-Domain", m.Domain)
		h("TLS-Report-Submitter", m.Submitter)
		h("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
		attType = "application/tlsrpt+gzip"
	} else {
		h("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	}
	b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.TrimRight(m.Text, "\n"), "\n", "\r\n") + "\r\n")
	b.WriteString("\r\n--" + boundary + "\r\n")
	name := mime.QEncoding.Encode("utf-8", m.Filename) // plain ASCII stays as it is
	fmt.Fprintf(&b, "Content-Type: %s; name=\"%s\"\r\n", attType, name)
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", name)
	enc := base64.StdEncoding.EncodeToString(m.Attachment)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return []byte(b.String()), nil
}
