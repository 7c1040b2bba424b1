package remote

import (
	"context"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// Signer makes the DKIM-Signature fields of a message (package dkim's MessageSigner, over the
// account store's keys): "" when the domain of its From has no key.
type Signer interface {
	Sign(ctx context.Context, r io.Reader) (string, error)
}

// sigCache keeps the signature of a pass's message as queued, made by the first attempt that
// sends it unconverted and shared by the others: the message is read once more per pass, not
// per host.
type sigCache struct {
	done   bool
	fields string
}

// signedBody is a message with DKIM-Signature fields in front of it.
type signedBody struct {
	fields string
	body   delivery.Body
}

func (b signedBody) Open() (io.ReadCloser, error) {
	rc, err := b.body.Open()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(b.fields), rc), rc}, nil
}

func (b signedBody) Size() int64 { return int64(len(b.fields)) + b.body.Size() }

// sign puts the DKIM-Signature fields of a.body, as it is sent (converted or not), in front of
// it. A message that cannot be signed goes unsigned, with a warning: the failure is tern's own
// (a bad key in the store, a From that does not parse), holding the mail back would not mend it,
// and unsigned mail still arrives, at worst in a junk folder. mox does the same.
func (d *Deliverer) sign(ctx context.Context, a *attempt) {
	if d.opts.DKIM == nil {
		return
	}
	fields := a.sig.fields
	if a.conv || !a.sig.done {
		fields = d.signFields(ctx, a.env, a.body)
		if !a.conv {
			a.sig.done, a.sig.fields = true, fields
		}
	}
	if fields != "" {
		a.body = signedBody{fields: fields, body: a.body}
	}
}

// signFields signs b, or says in the log why not.
func (d *Deliverer) signFields(ctx context.Context, env *envelope.Envelope, b delivery.Body) string {
	rc, err := b.Open()
	if err == nil {
		var fields string
		fields, err = d.opts.DKIM.Sign(ctx, rc)
		_ = rc.Close() // only read: a failed Close loses nothing
		if err == nil {
			return fields
		}
	}
	d.log.Warn("remote: DKIM signing failed, sent unsigned", "msgid", env.ID, "err", err.Error())
	return ""
}
