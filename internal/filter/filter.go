// Package filter holds what a content filter (a milter, rspamd) decides about a session or a
// message, and applies the edits it asks for to a message's text.
//
// A Verdict is the filter's answer at one stage: go on, accept without asking the filter
// again, refuse (with the filter's reply or a default), discard (answer 250 and deliver
// nothing), and at the end of a message also hold it (quarantine) and edit it: header fields
// added, inserted, changed or deleted, the body replaced, the sender changed, recipients added
// or deleted. The session (package smtpserver) applies a Verdict; this package only edits the
// text (Rewrite) and reads the header section the filters see (ReadHeader). It knows no wire
// protocol and no storage.
package filter

import (
	"github.com/tern-mail/tern/internal/smtp"
)

// Action is what a filter wants done.
type Action int

const (
	// Continue goes on to the next stage (and, at the end of a message, accepts it with the
	// verdict's edits).
	Continue Action = iota
	// Accept accepts without asking this filter again: for the rest of the session when given
	// at connect or HELO, for the rest of the transaction at MAIL or RCPT.
	Accept
	// Reject refuses with Reply (a 5xx), or ReplyReject.
	Reject
	// TempFail refuses with Reply (a 4xx), or ReplyTempFail.
	TempFail
	// Discard answers the client as though the message were accepted and delivers nothing.
	Discard
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case TempFail:
		return "tempfail"
	case Discard:
		return "discard"
	}
	return "unknown"
}

// The replies a refusal gets when the filter gave none (Postfix's milter replies).
var (
	ReplyReject   = smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhNotAuthorized, "Error: message content rejected")
	ReplyTempFail = smtp.R(smtp.CodeLocalError, smtp.EnhNotAuthorized, "Error: try again later")
)

// Verdict is a filter's answer at one stage.
type Verdict struct {
	Action Action
	// Reply is the filter's own reply for Reject and TempFail; zero: the default.
	Reply smtp.Reply
	// Quarantine, when not empty, holds the message in the queue (tern queue release lets it
	// go), with this reason in the log.
	Quarantine string
	// Edits change the message and its envelope; only at the end of a message.
	Edits []Edit
}

// Refused reports whether the verdict refuses (Reject or TempFail).
func (v Verdict) Refused() bool { return v.Action == Reject || v.Action == TempFail }

// RefusalReply is the reply to a refusing verdict: the filter's own when its class fits the
// action, else the default.
func (v Verdict) RefusalReply() smtp.Reply {
	switch v.Action {
	case Reject:
		if v.Reply.Code >= 500 && v.Reply.Code < 600 {
			return v.Reply
		}
		return ReplyReject
	case TempFail:
		if v.Reply.Code >= 400 && v.Reply.Code < 500 {
			return v.Reply
		}
		return ReplyTempFail
	}
	return smtp.Reply{}
}

// EditKind says what an Edit changes.
type EditKind int

const (
	// AddHeader appends a field at the end of the header section.
	AddHeader EditKind = iota + 1
	// InsertHeader inserts a field after the Index-th field (0: at the top).
	InsertHeader
	// ChangeHeader replaces the Index-th field named Name (1-based, counted among fields of
	// that name); an empty Value deletes it. Index 0 deletes every field of that name.
	ChangeHeader
	// ReplaceBody replaces the body with Body (the concatenation of every ReplaceBody edit).
	ReplaceBody
	// ChangeFrom sets the envelope sender to Addr (without angle brackets; "" for <>).
	ChangeFrom
	// AddRcpt and DelRcpt add and remove the envelope recipient Addr.
	AddRcpt
	DelRcpt
)

// Edit is one change a filter asks for at the end of a message.
type Edit struct {
	Kind  EditKind
	Name  string // header field name
	Value string // header field value, as the filter gave it (LF or CRLF line ends)
	Index int    // see AddHeader, InsertHeader, ChangeHeader
	Addr  string // ChangeFrom, AddRcpt, DelRcpt
	Body  []byte // ReplaceBody
}

// ChangesText reports whether any edit changes the message text (not only its envelope).
func ChangesText(edits []Edit) bool {
	for _, e := range edits {
		switch e.Kind {
		case AddHeader, InsertHeader, ChangeHeader, ReplaceBody:
			return true
		}
	}
	return false
}
