package msghdr

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testFields = Fields{Date: "Sat, 5 Dec 2026 03:34:51 +0000 (UTC)", MessageID: "<id@mx.example.test>"}

const (
	dateF = "Date: Sat, 5 Dec 2026 03:34:51 +0000 (UTC)\r\n"
	idF   = "Message-ID: <id@mx.example.test>\r\n"
)

// add runs in through an Adder, written in pieces of n octets (0: all at once).
func add(t testing.TB, in string, n int) (string, int64) {
	t.Helper()
	var out bytes.Buffer
	a := NewAdder(&out, testFields)
	for rest := in; len(rest) > 0; {
		k := len(rest)
		if n > 0 {
			k = min(n, k)
		}
		if w, err := a.Write([]byte(rest[:k])); err != nil || w != k {
			t.Fatalf("Write: %d, %v (want %d)", w, err, k)
		}
		rest = rest[k:]
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String(), a.Added()
}

func TestAdder(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct{ name, in, want string }{
		{"both-missing", "Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n",
			"Subject: hi\r\nFrom: a@b\r\n" + dateF + idF + "\r\nbody\r\n"},
		{"both-present", "Date: x\r\nMessage-ID: <y@z>\r\n\r\nbody\r\n", "Date: x\r\nMessage-ID: <y@z>\r\n\r\nbody\r\n"},
		{"case-and-space", "dAtE : x\r\nmessage-id:<y@z>\r\n\r\n", "dAtE : x\r\nmessage-id:<y@z>\r\n\r\n"},
		{"date-only", "Date: x\r\n\r\nb\r\n", "Date: x\r\n" + idF + "\r\nb\r\n"},
		{"resent-does-not-count", "Resent-Date: x\r\nResent-Message-ID: <y>\r\n\r\n",
			"Resent-Date: x\r\nResent-Message-ID: <y>\r\n" + dateF + idF + "\r\n"},
		{"folded", "Subject: a\r\n Date: not a field\r\n\tMessage-ID: nor this\r\n\r\nb\r\n",
			"Subject: a\r\n Date: not a field\r\n\tMessage-ID: nor this\r\n" + dateF + idF + "\r\nb\r\n"},
		{"body-mentions-them", "Subject: a\r\n\r\nDate: in the body\r\n", "Subject: a\r\n" + dateF + idF + "\r\nDate: in the body\r\n"},
		{"no-body", "Subject: a\r\n", "Subject: a\r\n" + dateF + idF},
		{"empty", "", dateF + idF},
		{"only-empty-line", "\r\nbody\r\n", dateF + idF + "\r\nbody\r\n"},
		{"no-separator", "Subject: a\r\nthis is text\r\nDate: body\r\n", "Subject: a\r\n" + dateF + idF + "this is text\r\nDate: body\r\n"},
		{"mbox-from-line", "From a@b Sat Dec  5 03:34:51 2026\r\nSubject: a\r\n\r\n", dateF + idF + "From a@b Sat Dec  5 03:34:51 2026\r\nSubject: a\r\n\r\n"},
		{"unterminated-field", "Subject: a", "Subject: a\r\n" + dateF + idF},
		{"unterminated-text", "Subject: a\r\nhello", "Subject: a\r\n" + dateF + idF + "hello"},
		{"bare-lf-empty-line", "Subject: a\n\nbody", "Subject: a\n" + dateF + idF + "\nbody"},
		{"cr-not-crlf", "Subject: a\r\n\rx\r\n", "Subject: a\r\n" + dateF + idF + "\rx\r\n"},
		{"trailing-cr", "Subject: a\r\n\r", "Subject: a\r\n" + dateF + idF + "\r"},
		{"long-header-section", strings.Repeat("X-Long: "+long+"\r\n", 3) + "Date: d\r\n\r\n",
			strings.Repeat("X-Long: "+long+"\r\n", 3) + "Date: d\r\n" + idF + "\r\n"},
		{"long-name", long + ": v\r\n\r\n", dateF + idF + long + ": v\r\n\r\n"},
		{"name-at-limit", strings.Repeat("n", MaxName) + ": v\r\n\r\n", strings.Repeat("n", MaxName) + ": v\r\n" + dateF + idF + "\r\n"},
		{"eight-bit-line", "Subject: a\r\n\xc3\xa9t\xc3\xa9\r\n", "Subject: a\r\n" + dateF + idF + "\xc3\xa9t\xc3\xa9\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 2, 3, 7, 4096} {
				got, added := add(t, tc.in, n)
				if got != tc.want {
					t.Fatalf("pieces of %d:\n got %q\nwant %q", n, got, tc.want)
				}
				if added != int64(len(got)-len(tc.in)) {
					t.Fatalf("pieces of %d: Added %d, but %d octets were added", n, added, len(got)-len(tc.in))
				}
			}
		})
	}
}

// failWriter fails every write after the first n octets.
type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errDisk
	}
	f.n -= len(p)
	return len(p), nil
}

// A failing writer's error reaches the caller, from Write or from Close.
func TestAdderWriteError(t *testing.T) {
	in := "Subject: a\r\n\r\nbody\r\n"
	for n := 0; n < len(in)+len(dateF)+len(idF); n++ {
		a := NewAdder(&failWriter{n: n}, testFields)
		_, err := a.Write([]byte(in))
		if err == nil {
			err = a.Close()
		}
		if !errors.Is(err, errDisk) {
			t.Fatalf("after %d octets: %v, want the writer's error", n, err)
		}
	}
	a := NewAdder(&bytes.Buffer{}, testFields)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestDateAndMessageID(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	tm := time.Date(2026, 12, 5, 4, 34, 51, 0, loc)
	if got, want := Date(tm), "Sat, 5 Dec 2026 04:34:51 +0100 (CET)"; got != want {
		t.Errorf("Date: %q, want %q", got, want)
	}
	if _, err := time.Parse(time.RFC1123Z+" (MST)", Date(tm.AddDate(0, 0, 10))); err != nil {
		t.Errorf("Date does not parse as RFC 5322: %v", err)
	}
	id1, id2 := MessageID(tm, "ABC123", "mx.example.test"), MessageID(tm, "ABC123", "mx.example.test")
	if !regexp.MustCompile(`^<20261205033451\.ABC123\.[A-Z2-7]{16}@mx\.example\.test>$`).MatchString(id1) || id1 == id2 {
		t.Errorf("MessageID: %q, %q", id1, id2)
	}
}
