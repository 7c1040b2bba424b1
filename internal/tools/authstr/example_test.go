package authstr_test

import (
	"fmt"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/tools/authstr"
)

// The seeds' CRAM-MD5 exchange with indimail: the challenge as the server sent it.
func ExampleCRAM() {
	out, err := authstr.CRAM(sasl.CRAMMD5, "postmaster@example.com", "pass", "334 PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg==", authstr.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Lines[0])
	// Output: cG9zdG1hc3RlckBleGFtcGxlLmNvbSBjZWU4Mzk3YWIxMjNhMGQ0ZjNhN2ZkZGJiOWNiODcxOQ==
}

// Decode of the seeds' AUTH PLAIN string: the password is masked.
func ExampleDecode() {
	d, err := authstr.Decode("AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh", authstr.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(authstr.FormatDecode(d))
	// Output:
	// \0kenneth.burgener\0***
	// PLAIN message (RFC 4616 §2): authzid NUL authcid NUL password
	//   authzid:  (empty: act as the authcid)
	//   authcid:  kenneth.burgener (the user name to log in with)
	//   password: *** (9 octets; --show-secrets shows it)
}

// SCRAM-SHA-1 by hand, with RFC 5802 §5's nonce and server messages (raw, or base64 as after
// "334 ").
func ExampleScram() {
	s, err := authstr.NewScram(authstr.ScramParams{Mech: sasl.ScramSHA1, User: "user", Password: "pencil", Nonce: "fyko+d2lbbFgONRv9qkxdawL"}, authstr.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	first, _ := s.First()
	final, _ := s.Next("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
	last, err := s.Next("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
	fmt.Println(first.Lines[0])
	fmt.Println(final.Lines[0])
	fmt.Printf("%q %v %v\n", last.Lines[0], s.Done(), err)
	// Output:
	// biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM
	// Yz1iaXdzLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdMM3JmY05IWUpZMVpWdldWczdqLHA9djBYOHYzQnoyVDBDSkdiSlF5RjBYK0hJNFRzPQ==
	// "" true <nil>
}
