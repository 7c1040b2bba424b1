package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"testing"
)

// GzipAttachment parses a multipart message (CRLF or LF line ends) and returns its header, the
// media type and file name of its first attachment, and that attachment's content, base64
// decoded and gunzipped: what a report receiver reads of a DMARC or TLS report.
func GzipAttachment(t testing.TB, msg []byte) (h mail.Header, mediaType, filename string, content []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no attachment (%v):\n%s", err, msg)
		}
		disp, _, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if disp != "attachment" {
			continue
		}
		ct, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatalf("the attachment does not gunzip: %v", err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("the attachment does not gunzip: %v", err)
		}
		return m.Header, ct, p.FileName(), b
	}
}
