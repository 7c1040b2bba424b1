package test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSubmissionAddsMissingHeaders sends a message without Date: and Message-ID: with Python's
// smtplib: logged in on 587 and 465 it is delivered with both (RFC 6409 §8.2, §8.3), added once
// at the end of its header section; from another server on 25 it is delivered as sent; and the
// fields a client wrote are kept as they are.
func TestSubmissionAddsMissingHeaders(t *testing.T) {
	t.Parallel()
	pythonExe(t)
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")
	const (
		dateRE  = `^Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)$`
		msgIDRE = `^Message-ID: <\d{14}\.[0-9A-Z]+\.[A-Z2-7]{16}@mx\.example\.test>$`
	)
	for _, tc := range []struct {
		name, connect, port string
		login               bool
		fields              string // the client's own
		want                bool   // both fields added
	}{
		{"submission", "plain", "submission", true, "", true},
		{"submissions", "ssl", "submissions", true, "", true},
		{"smtp-anonymous", "plain", "smtp", false, "", false},
		{"submission-own-fields", "plain", "submission", true, "Date: Sat, 5 Dec 2026 03:34:51 +0000\nMessage-ID: <own@client.example>\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := map[string]string{"smtp": tn.SMTP, "submission": tn.Submission, "submissions": tn.Submissions}[tc.port]
			tok := token(t)
			steps := [][]any{step("ehlo")}
			from := "alice@host.example.com"
			if tc.login {
				steps = append(steps, step("login", "PLAIN", "bob@example.test", "pw"))
				from = "bob@example.test"
			}
			steps = append(steps, step("mail", from, []string{}), step("rcpt", "bob@example.test", []string{}),
				step("data", "From: <"+from+">\nSubject: "+tok+"\n"+tc.fields+"\nno Date, no Message-ID\n"), step("quit"))
			out, _ := smtplibRun(t, tc.connect, addr, steps...)
			mustMatch(t, "smtplib", out, `^DATA 250 2\.0\.0 Ok: queued as`)
			msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
			head, _, _ := strings.Cut(msg, "\n\n")
			dates := regexp.MustCompile(`(?mi)^Date:.*$`).FindAllString(head, -1)
			ids := regexp.MustCompile(`(?mi)^Message-ID:.*$`).FindAllString(head, -1)
			switch {
			case tc.want:
				if len(dates) != 1 || len(ids) != 1 {
					t.Fatalf("want one Date and one Message-ID, header section:\n%s", head)
				}
				mustMatch(t, "Date", dates[0], dateRE)
				mustMatch(t, "Message-ID", ids[0], msgIDRE)
				// At the end of the header section, after the client's fields.
				mustMatch(t, "header section", head, `(?s)Subject: `+tok+`\n`+regexp.QuoteMeta(dates[0])+`\n`+regexp.QuoteMeta(ids[0])+`$`)
				d := strings.TrimSpace(strings.TrimPrefix(dates[0], "Date:"))
				if _, err := time.Parse("Mon, 2 Jan 2006 15:04:05 -0700 (MST)", d); err != nil {
					t.Errorf("Date %q: %v", d, err)
				}
			case tc.fields != "":
				if len(dates) != 1 || len(ids) != 1 || !strings.HasSuffix(head, strings.TrimSuffix(tc.fields, "\n")) {
					t.Fatalf("the client's fields were not kept as they were:\n%s", head)
				}
			default:
				if len(dates) != 0 || len(ids) != 0 {
					t.Fatalf("fields added to a message from an anonymous client:\n%s", head)
				}
			}
			if body(msg) != "no Date, no Message-ID\n" {
				t.Errorf("body %q", body(msg))
			}
		})
	}
}
