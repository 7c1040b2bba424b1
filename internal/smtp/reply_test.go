package smtp_test

import (
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

func TestReplyWire(t *testing.T) {
	tests := []struct {
		name     string
		reply    smtp.Reply
		wire     string
		enhanced string
	}{
		{"single line with enhanced code", smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok"), "250 2.0.0 Ok\r\n", "2.0.0"},
		{"class follows a 5xx code", smtp.Reply{Code: 550, Enh: "1.1", Text: "x"}, "550 5.1.1 x\r\n", "5.1.1"},
		{"class follows a 4xx code", smtp.R(smtp.CodeLocalError, smtp.EnhSystemOther, "try later"), "451 4.3.0 try later\r\n", "4.3.0"},
		{"two-digit detail", smtp.R(530, smtp.EnhEncryptionNeeded, "Must issue STARTTLS first"), "530 5.7.11 Must issue STARTTLS first\r\n", "5.7.11"},
		{"greeting has no enhanced code", smtp.R(smtp.CodeReady, "", "mx.example.com ESMTP tern"), "220 mx.example.com ESMTP tern\r\n", ""},
		{"multi-line without enhanced code", smtp.Reply{Code: 250, Text: "a\nb"}, "250-a\r\n250 b\r\n", ""},
		{"EHLO capabilities", smtp.R(smtp.CodeOK, "", "mx.example.com\nPIPELINING\nSIZE 10240000\n8BITMIME"),
			"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n", ""},
		{"multi-line with enhanced code on every line", smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhNotAuthorized, "Relaying denied\nsee policy"),
			"550-5.7.1 Relaying denied\r\n550 5.7.1 see policy\r\n", "5.7.1"},
		{"enhanced code without text", smtp.R(smtp.CodeOK, smtp.EnhSenderOK, ""), "250 2.1.0\r\n", "2.1.0"},
		{"empty line inside multi-line", smtp.R(smtp.CodeHelp, smtp.EnhOther, "a\n\nb"), "214-2.0.0 a\r\n214-2.0.0\r\n214 2.0.0 b\r\n", "2.0.0"},
		{"AUTH challenge", smtp.R(334, "", "VXNlcm5hbWU6"), "334 VXNlcm5hbWU6\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.reply.String(); got != tt.wire {
				t.Errorf("String() = %q, want %q", got, tt.wire)
			}
			prefix := []byte("prev\r\n")
			if got := string(tt.reply.Append(prefix)); got != "prev\r\n"+tt.wire {
				t.Errorf("Append(prefix) = %q, want prefix kept and %q appended", got, tt.wire)
			}
			if got := tt.reply.Enhanced(); got != tt.enhanced {
				t.Errorf("Enhanced() = %q, want %q", got, tt.enhanced)
			}
		})
	}
}

func TestReplyPositive(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{smtp.CodeReady, true},
		{smtp.CodeOK, true},
		{smtp.CodeStartInput, true},
		{smtp.CodeUnavailable, false},
		{smtp.CodeSyntaxError, false},
		{smtp.CodeTransactionFailed, false},
	}
	for _, tt := range tests {
		if got := smtp.R(tt.code, "", "x").Positive(); got != tt.want {
			t.Errorf("Reply{Code: %d}.Positive() = %v, want %v", tt.code, got, tt.want)
		}
	}
}

// TestEnhanced: the class of an enhanced code is the reply code's first digit, so one
// "subject.detail" serves a temporary and a permanent failure.
func TestEnhanced(t *testing.T) {
	for _, tc := range []struct {
		code int
		enh  string
		want string
	}{
		{smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, "5.1.1"},
		{smtp.CodeLocalError, smtp.EnhNoRoute, "4.4.4"},
		{smtp.CodeMailboxUnavailable, smtp.EnhNoRoute, "5.4.4"},
		{smtp.CodeLocalError, smtp.EnhRequireTLS, "4.7.30"},
		{smtp.CodeOK, smtp.EnhOther, "2.0.0"},
		{smtp.CodeOK, "", ""},
	} {
		if got := smtp.Enhanced(tc.code, tc.enh); got != tc.want {
			t.Errorf("Enhanced(%d, %q) = %q, want %q", tc.code, tc.enh, got, tc.want)
		}
		if got := smtp.R(tc.code, tc.enh, "x").Enhanced(); got != tc.want {
			t.Errorf("smtp.R(%d, %q).Enhanced() = %q, want %q", tc.code, tc.enh, got, tc.want)
		}
	}
}
