package reports

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fakeDNS answers TXT lookups from a map; a name in fail fails.
type fakeDNS struct {
	txt  map[string][]string
	fail map[string]bool
}

func (d fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if d.fail[name] {
		return nil, io.ErrUnexpectedEOF
	}
	return d.txt[name], nil
}

// queued is a fake queue: Submit keeps the messages.
type queued struct {
	mu   sync.Mutex
	msgs map[string][]byte // by recipient
	n    int
}

func (q *queued) submit(_ context.Context, rcpt string, msg []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.msgs == nil {
		q.msgs = map[string][]byte{}
	}
	q.n++
	q.msgs[rcpt] = msg
	return "Q" + string(rune('0'+q.n)), nil
}

// attachment parses a report message: its header, the attachment's media type, file name and
// content gunzipped.
func attachment(t *testing.T, msg []byte) (mail.Header, string, string, []byte) {
	t.Helper()
	return testutil.GzipAttachment(t, msg)
}

// validateXML checks doc against RFC 7489 Appendix C's schema with xmllint.
func validateXML(t *testing.T, doc []byte) {
	t.Helper()
	if err := schemaCheck(t, doc); err != nil {
		t.Error(err)
	}
}

// schemaCheck runs xmllint --schema on doc.
func schemaCheck(t *testing.T, doc []byte) error {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		testutil.MissingPeer(t, "xmllint (libxml2-utils) not installed: run scripts/test-deps.sh")
	}
	f := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/rfc7489-appendix-c.xsd", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xmllint: %v\n%s\n%s", err, out, doc)
	}
	return nil
}
