package smtp_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// A server answers with Reply values; Text lines become "-" continuation lines.
func ExampleReply() {
	fmt.Printf("%q\n", smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, "No such user"))
	fmt.Printf("%q\n", smtp.R(smtp.CodeOK, "", "mx.example.com\nPIPELINING\n8BITMIME"))
	// Output:
	// "550 5.1.1 No such user\r\n"
	// "250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
}

// After "354", a server reads the message with ReadData, then goes back to reading commands.
// A smuggled "LF . LF" does not end the message: it is read as text and refused.
func ExampleReadData() {
	conn := bufio.NewReader(strings.NewReader(
		"Subject: test\r\n\r\n..a stuffed line\r\n.\r\n" +
			"MAIL FROM:<kenneth@oeey.com>\r\n" +
			"DATA\r\n" +
			"hello\n.\nMAIL FROM:<admin@bank.example>\r\n.\r\n" +
			"QUIT\r\n"))
	var scratch []byte
	for {
		var msg bytes.Buffer
		n, err := smtp.ReadData(conn, &msg, 10<<20)
		fmt.Printf("%d octets, err=%v: %q\n", n, err, msg.String())
		line, err := smtp.ReadLine(conn, smtp.MaxCommandLine, &scratch)
		if err != nil {
			return
		}
		fmt.Printf("next command: %s\n", line)
		if verb, _ := smtp.ParseCommand(string(line)); verb == "QUIT" {
			return
		}
		if _, err := smtp.ReadLine(conn, smtp.MaxCommandLine, &scratch); err != nil { // DATA
			return
		}
	}
	// Output:
	// 34 octets, err=<nil>: "Subject: test\r\n\r\n.a stuffed line\r\n"
	// next command: MAIL FROM:<kenneth@oeey.com>
	// 0 octets, err=smtp: bare LF: ""
	// next command: QUIT
}
