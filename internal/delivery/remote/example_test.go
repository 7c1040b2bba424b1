package remote_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/remote"
	"github.com/tern-mail/tern/internal/envelope"
)

// message is a delivery.Body in memory; the queue's reads its spool file.
type message string

func (m message) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(m))), nil
}
func (m message) Size() int64 { return int64(len(m)) }

// A Deliverer for a server that asks a local validating resolver (so that DANE works) and
// requires verified TLS for one partner domain. The queue then calls DeliverBatch with the
// recipients of one domain and keeps each outcome.
func ExampleNew() {
	d, err := remote.New(remote.Options{
		Hostname:  "mail.example.org",
		Resolver:  "127.0.0.1:53",
		TLSPolicy: map[string]remote.TLSMode{"partner.example": remote.TLSVerify},
	})
	if err != nil {
		log.Fatal(err)
	}
	env := &envelope.Envelope{ID: "Q1", From: "alice@example.org", Rcpts: []envelope.Recipient{
		{Addr: "bob@partner.example"}, {Addr: "carol@partner.example"},
	}}
	body := message("From: alice@example.org\r\nSubject: hello\r\n\r\nHi.\r\n")
	for i, o := range d.DeliverBatch(context.Background(), env, []int{0, 1}, body) {
		switch {
		case o.Err == nil:
			fmt.Println(env.Rcpts[i].Addr, "delivered to", o.RemoteMTA)
		case delivery.IsPermanent(o.Err):
			fmt.Println(env.Rcpts[i].Addr, "bounces:", o.Err)
		default:
			fmt.Println(env.Rcpts[i].Addr, "retried later:", o.Err)
		}
	}
}
