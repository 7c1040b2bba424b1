package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// TestCheck: Check refuses what Build refuses before binding, the files the settings name
// included, with the same words, and passes what Build accepts.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	selfSigned := func(name string) string {
		d := filepath.Join(dir, name)
		if _, _, err := tlsutil.LoadOrCreate(d, "mx.example.test"); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := selfSigned("a"), selfSigned("b")
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
		want string // "" for none
	}{
		{name: "defaults", set: func(*config.Config) {}},
		{name: "certificate", set: func(c *config.Config) {
			c.TLS.Cert, c.TLS.Key = filepath.Join(a, "cert.pem"), filepath.Join(a, "key.pem")
		}},
		{name: "key of another certificate", set: func(c *config.Config) {
			c.TLS.Cert, c.TLS.Key = filepath.Join(a, "cert.pem"), filepath.Join(b, "key.pem")
		}, want: "tls.cert and tls.key: loading " + filepath.Join(a, "cert.pem")},
		{name: "certificate missing", set: func(c *config.Config) {
			c.TLS.Cert, c.TLS.Key = filepath.Join(dir, "nope.pem"), filepath.Join(a, "key.pem")
		}, want: "no such file"},
		{name: "keytab missing", set: func(c *config.Config) { c.Auth.GSSAPIKeytab = filepath.Join(dir, "nope.keytab") },
			want: "auth.gssapi_keytab: open "},
		{name: "keytab not one", set: func(c *config.Config) { c.Auth.GSSAPIKeytab = file }, want: "keytab"},
		{name: "DNS list site", set: func(c *config.Config) { c.Screen.DNSBLSites = []string{"zen.example=127.0.0.[2..x]"} },
			want: "screen.dnsbl_sites: "},
		{name: "data not a directory", set: func(c *config.Config) { c.Data = file }, want: "not a directory"},
		{name: "setting and file", set: func(c *config.Config) {
			c.Queue.Workers = 0
			c.Data = file
		}, want: "queue.workers must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.set(&cfg)
			err := Check(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
			s, berr := Build(cfg, slog.New(slog.DiscardHandler))
			if berr == nil {
				s.Close()
			}
			if (err == nil) != (berr == nil) || berr != nil && !strings.Contains(berr.Error(), tc.want) {
				t.Errorf("Build: %v, Check: %v: they must refuse the same", berr, err)
			}
			// A reload leaves the certificate files to their own reload, which keeps the
			// pair in force when the new one is bad.
			rerr := CheckReload(cfg)
			if strings.HasPrefix(tc.name, "certificate") || strings.HasPrefix(tc.name, "key of") {
				if rerr != nil {
					t.Errorf("CheckReload: %v, want the certificate files left to their reload", rerr)
				}
			} else if (err == nil) != (rerr == nil) {
				t.Errorf("CheckReload: %v, Check: %v", rerr, err)
			}
		})
	}
}
