package lmtp

import (
	"bufio"
	"errors"
	"io"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
)

// errNotText is checkBinary's finding: octets that DATA cannot carry unchanged.
var errNotText = errors.New("the BINARYMIME body has NUL, bare CR or bare LF, which LMTP without BINARYMIME cannot carry")

// checkBinary decides whether a BODY=BINARYMIME message can go out with DATA unchanged, as
// 8BITMIME: no NUL (RFC 6152 §3) and no CR or LF outside a CRLF pair, which DATA would not
// carry as they are. A long line is let through: the limit of RFC 5321 §4.5.3.1.6 protects
// relays, and the mailbox server stores the line as it is. It returns nil when the message
// can go, and the outcome for every recipient when it cannot (RFC 3030 §3: no conversion).
func checkBinary(body delivery.Body) *delivery.Error {
	rc, err := body.Open()
	if err != nil {
		return delivery.Temporary("cannot read the queued message", err)
	}
	defer func() { _ = rc.Close() }() // only read: a failed Close loses nothing
	br := bufio.NewReaderSize(rc, 64<<10)
	var prevCR bool
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return delivery.Temporary("cannot read the queued message", err)
		}
		if b == 0 || (prevCR && b != '\n') || (!prevCR && b == '\n') {
			return errBinary()
		}
		prevCR = b == '\r'
	}
	if prevCR {
		return errBinary()
	}
	return nil
}

func errBinary() *delivery.Error {
	return &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhConversion,
		Msg: "binary message cannot be delivered to the local mailbox server without conversion", Err: errNotText}
}
