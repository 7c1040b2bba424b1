package queue

import (
	"bytes"
	"io"
	"testing"
)

// TestWriterReader: a message being written reads back whole before its commit (the content
// filters read it so), for an inline body and one in its own file, and the commit that follows
// stores it unchanged.
func TestWriterReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"inline", []byte("Subject: hi\r\n\r\nbody\r\n")},
		{"external", append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("x\r\n"), 100000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openQueue(t, t.TempDir(), testOpts(newFake(nil)))
			w, err := q.NewMessage()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(tc.body); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				rc, err := w.Reader()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				if err != nil {
					t.Fatal(err)
				}
				if err := rc.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.body) {
					t.Fatalf("read back %d octets, want %d", len(got), len(tc.body))
				}
			}
			env := newEnv("rcpt@example.net")
			if err := w.Commit(t.Context(), env); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Reader(); err == nil {
				t.Error("Reader after Commit succeeded")
			}
			rc, err := q.Body(env.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got, _ := io.ReadAll(rc); !bytes.Equal(got, tc.body) {
				t.Fatalf("stored %d octets, want %d", len(got), len(tc.body))
			}
		})
	}
}
