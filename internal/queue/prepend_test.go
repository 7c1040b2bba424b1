package queue

import (
	"bytes"
	"io"
	"testing"
)

// TestPrepend: the envelope's Prepend is read before the stored body, by delivery and by Body,
// for an inline body and one in its own file, before and after a restart.
func TestPrepend(t *testing.T) {
	const prefix = "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=a@example.org\r\n"
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"inline", []byte("Subject: hi\r\n\r\nbody\r\n")},
		{"external", append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("x\r\n"), 100000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, dir, testOpts(newFake(nil)))
			env := newEnv("rcpt@example.net")
			env.Prepend = prefix
			id := commitMsg(t, q, env, tc.body)
			want := append([]byte(prefix), tc.body...)
			check := func(q *Queue) {
				t.Helper()
				rc, err := q.Body(id)
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
				if !bytes.Equal(got, want) {
					t.Fatalf("body starts %q, want %q", got[:min(len(got), 120)], want[:120])
				}
			}
			check(q)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			check(openQueue(t, dir, testOpts(newFake(nil))))
		})
	}
}
