package app

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
)

// TestScreenOptions: nothing is built on the defaults; a bad DNS list site is an error naming
// the setting; each part on builds a screener.
func TestScreenOptions(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	data := t.TempDir()
	cfg := config.Default()
	o, err := newScreening(data, nil, log).options(cfg)
	if err != nil || o.Screener != nil || o.PregreetWait != 0 {
		t.Fatalf("defaults: %+v, %v; want no screening", o, err)
	}
	cfg.Screen.DNSBLSites = []string{"zen.example.test=127.0.0.[2..1]"}
	if _, err := newScreening(data, nil, log).options(cfg); err == nil || !strings.Contains(err.Error(), "screen.dnsbl_sites") {
		t.Errorf("bad site: %v, want an error naming screen.dnsbl_sites", err)
	}
	for name, mutate := range map[string]func(*config.Screen){
		"dnsbl":    func(s *config.Screen) { s.DNSBLSites = []string{"zen.example.test*2"} },
		"rdns":     func(s *config.Screen) { s.ReverseDNS = true },
		"greylist": func(s *config.Screen) { s.Greylist = true },
	} {
		cfg := config.Default()
		mutate(&cfg.Screen)
		sc := newScreening(data, nil, log)
		o, err := sc.options(cfg)
		if err != nil || o.Screener == nil {
			t.Errorf("%s: %+v, %v; want a screener", name, o, err)
		}
		sc.save()
	}
}
