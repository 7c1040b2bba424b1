package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTLSCerts(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []CertPair
		reload     time.Duration
		err        string
	}{
		{name: "none", want: nil, reload: time.Minute},
		{name: "cert and key", file: "[tls]\ncert = \"a.crt\"\nkey = \"a.key\"\n",
			want: []CertPair{{"a.crt", "a.key"}}, reload: time.Minute},
		{name: "inline list", file: "[tls]\ncert = \"a.crt\"\nkey = \"a.key\"\nreload = \"10s\"\ncerts = [{cert = \"b.crt\", key = \"b.key\"}]\n",
			want: []CertPair{{"a.crt", "a.key"}, {"b.crt", "b.key"}}, reload: 10 * time.Second},
		{name: "array of tables", file: "[[tls.certs]]\ncert = \"b.crt\"\nkey = \"b.key\"\n[[tls.certs]]\ncert = \"c.crt\"\nkey = \"c.key\"\n",
			want: []CertPair{{"b.crt", "b.key"}, {"c.crt", "c.key"}}, reload: time.Minute},
		{name: "no key", file: "[tls]\ncerts = [{cert = \"b.crt\"}]\n", err: "tls.certs[0]: both cert and key"},
		{name: "negative reload", file: "[tls]\nreload = \"-1s\"\n", err: "tls.reload must not be negative"},
		{name: "unknown key", file: "[[tls.certs]]\ncert = \"b.crt\"\nkey = \"b.key\"\nchain = \"x\"\n", err: "chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tern.toml")
			if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err == nil {
				err = c.Validate()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TLS.Pairs(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Pairs() = %v, want %v", got, tc.want)
			}
			if c.TLS.Reload.Duration != tc.reload {
				t.Errorf("reload = %v, want %v", c.TLS.Reload.Duration, tc.reload)
			}
		})
	}
}
