package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPublicOnly: the TLS report client reaches no loopback, private, link-local or unspecified
// address, whatever a DNS record names.
func TestPublicOnly(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"192.0.2.1:443", true}, {"[2001:db8::1]:443", true}, {"8.8.8.8:443", true},
		{"127.0.0.1:443", false}, {"[::1]:443", false}, {"10.1.2.3:443", false}, {"172.16.0.1:443", false},
		{"192.168.1.1:443", false}, {"169.254.169.254:80", false}, {"[fe80::1]:443", false},
		{"[fd00::1]:443", false}, {"0.0.0.0:443", false}, {"224.0.0.1:443", false}, {"[::ffff:127.0.0.1]:443", false},
	} {
		err := publicOnly("tcp", c.addr, nil)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, errNotPublic) {
			t.Errorf("%s: %v, want ok=%v", c.addr, err, c.ok)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = reportsHTTP().Do(req)
	var op *net.OpError
	if !errors.Is(err, errNotPublic) || !errors.As(err, &op) {
		t.Errorf("POST to a loopback server: %v, want refused", err)
	}
}
