package smtpclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/tern-mail/tern/internal/smtpclient"
)

// One transaction with Send: the server offers PIPELINING, so MAIL, both RCPTs and DATA go out
// together; one recipient is refused, and the message goes to the other.
func Example() {
	ctx := context.Background()
	conn := fakeMX() // net.Dial("tcp", "mx.example.test:25") in real life; or use Dial
	c, err := smtpclient.New(ctx, conn, smtpclient.Options{
		LocalName: "client.example.org",
		Trace: func(dir smtpclient.Direction, tls bool, line string) {
			arrow := "<-"
			if dir == smtpclient.Sent {
				arrow = "->"
			}
			fmt.Println(arrow, line)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	res, err := c.Send(ctx, smtpclient.Envelope{
		From:  "alice@example.org",
		Rcpts: []smtpclient.Recipient{{Addr: "bob@example.test"}, {Addr: "nobody@example.test"}},
	}, strings.NewReader("Subject: hello\r\n\r\nHi Bob.\r\n"))
	if err != nil {
		fmt.Println("not sent:", err)
		return
	}
	for _, r := range res.Rcpts {
		var e *smtpclient.Error
		if errors.As(r.Err, &e) {
			fmt.Printf("%s refused (permanent %v, %s)\n", r.Addr, e.Permanent, e.Enhanced)
		}
	}
	fmt.Println("accepted for", res.Accepted(), "-", res.Data.Text)
	c.Quit(ctx)
	// Output:
	// <- 220 mx.example.test ESMTP
	// -> EHLO client.example.org
	// <- 250-mx.example.test
	// <- 250-PIPELINING
	// <- 250 ENHANCEDSTATUSCODES
	// -> MAIL FROM:<alice@example.org>
	// -> RCPT TO:<bob@example.test>
	// -> RCPT TO:<nobody@example.test>
	// -> DATA
	// <- 250 2.1.0 Ok
	// <- 250 2.1.5 Ok
	// <- 550 5.1.1 <nobody@example.test>: Recipient address rejected
	// <- 354 End data with <CR><LF>.<CR><LF>
	// <- 250 2.0.0 Ok: queued as 4F2A
	// nobody@example.test refused (permanent true, 5.1.1)
	// accepted for [bob@example.test] - Ok: queued as 4F2A
	// -> QUIT
	// <- 221 2.0.0 Bye
}

// fakeMX returns the client end of a connection to a tiny scripted server.
func fakeMX() net.Conn {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		r, w := bufio.NewReader(server), bufio.NewWriter(server)
		reply := func(s string) { w.WriteString(s + "\r\n"); _ = w.Flush() }
		reply("220 mx.example.test ESMTP")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.TrimSpace(line); {
			case strings.HasPrefix(cmd, "EHLO"):
				reply("250-mx.example.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES")
			case strings.HasPrefix(cmd, "MAIL"):
				reply("250 2.1.0 Ok")
			case strings.Contains(cmd, "nobody@"):
				reply("550 5.1.1 <nobody@example.test>: Recipient address rejected")
			case strings.HasPrefix(cmd, "RCPT"):
				reply("250 2.1.5 Ok")
			case cmd == "DATA":
				reply("354 End data with <CR><LF>.<CR><LF>")
				for line != ".\r\n" {
					if line, err = r.ReadString('\n'); err != nil {
						return
					}
				}
				reply("250 2.0.0 Ok: queued as 4F2A")
			case cmd == "QUIT":
				reply("221 2.0.0 Bye")
				return
			}
		}
	}()
	return client
}
