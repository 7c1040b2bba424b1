package smtpclient_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/tern-mail/tern/internal/smtpclient"
)

// LMTP to a mailbox server: one transaction for three recipients, and a reply for each. The
// server refuses one at RCPT, and after the message it answers for the other two in turn: one
// mailbox took the message, the other is full.
func ExampleClient_SendLMTP() {
	ctx := context.Background()
	conn := fakeLMTP() // net.Dial("unix", "/run/dovecot/lmtp") in real life
	c, err := smtpclient.New(ctx, conn, smtpclient.Options{LMTP: true, LocalName: "mx.example.test"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.Hello(ctx); err != nil { // LHLO
		fmt.Println(err)
		return
	}
	res, err := c.SendLMTP(ctx, smtpclient.Envelope{
		From:  "alice@example.org",
		Rcpts: []smtpclient.Recipient{{Addr: "bob@example.test"}, {Addr: "nobody@example.test"}, {Addr: "carol@example.test"}},
	}, strings.NewReader("Subject: hello\r\n\r\nHi.\r\n"))
	if err != nil {
		fmt.Println("delivered to nobody:", err)
	}
	for _, r := range res.Rcpts {
		if r.Err != nil {
			fmt.Printf("%s: %v (permanent %v)\n", r.Addr, r.Err, smtpclient.IsPermanent(r.Err))
		} else {
			fmt.Printf("%s: delivered (%s)\n", r.Addr, r.Reply.Text)
		}
	}
	c.Quit(ctx)
	// Output:
	// bob@example.test: delivered (<bob@example.test> Saved)
	// nobody@example.test: RCPT: 550 5.1.1 <nobody@example.test> User doesn't exist (permanent true)
	// carol@example.test: DATA: 452 4.2.2 <carol@example.test> Mailbox is full (permanent false)
}

// fakeLMTP returns the client end of a connection to a tiny scripted LMTP server.
func fakeLMTP() net.Conn {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		r, w := bufio.NewReader(server), bufio.NewWriter(server)
		reply := func(s string) { w.WriteString(s + "\r\n"); _ = w.Flush() }
		reply("220 mail.example.test LMTP ready")
		var rcpts []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.TrimSpace(line); {
			case strings.HasPrefix(cmd, "LHLO"):
				reply("250-mail.example.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
			case strings.HasPrefix(cmd, "MAIL"):
				reply("250 2.1.0 OK")
			case strings.Contains(cmd, "nobody@"):
				reply("550 5.1.1 <nobody@example.test> User doesn't exist")
			case strings.HasPrefix(cmd, "RCPT"):
				rcpts = append(rcpts, strings.TrimSuffix(strings.TrimPrefix(cmd, "RCPT TO:<"), ">"))
				reply("250 2.1.5 OK")
			case cmd == "DATA":
				reply("354 OK")
				for line != ".\r\n" {
					if line, err = r.ReadString('\n'); err != nil {
						return
					}
				}
				for _, rc := range rcpts { // RFC 2033 §4.2: one reply per accepted recipient
					if strings.HasPrefix(rc, "carol@") {
						reply("452 4.2.2 <" + rc + "> Mailbox is full")
					} else {
						reply("250 2.0.0 <" + rc + "> Saved")
					}
				}
			case cmd == "QUIT":
				reply("221 2.0.0 Bye")
				return
			}
		}
	}()
	return client
}
