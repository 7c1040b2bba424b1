package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestScreenValidate: the screen section's bad values are refused, its exempt networks parsed.
func TestScreenValidate(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*Screen){
		"zero-threshold":     func(s *Screen) { s.DNSBLThreshold = 0 },
		"positive-allow":     func(s *Screen) { s.DNSBLAllowlistThreshold = 1 },
		"negative-pregreet":  func(s *Screen) { s.PregreetWait.Duration = -time.Second },
		"long-pregreet":      func(s *Screen) { s.PregreetWait.Duration = 2 * time.Minute },
		"zero-delay":         func(s *Screen) { s.GreylistDelay.Duration = 0 },
		"window-under-delay": func(s *Screen) { s.GreylistRetryWindow.Duration = time.Minute },
		"zero-expire":        func(s *Screen) { s.GreylistExpire.Duration = 0 },
		"zero-entries":       func(s *Screen) { s.GreylistMaxEntries = 0 },
		"bad-exempt":         func(s *Screen) { s.Exempt = []string{"192.0.2.0/33"} },
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			mutate(&c.Screen)
			if err := c.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
	s := defaultScreen()
	s.Exempt = []string{"192.0.2.77/24", "2001:db8::1", "::ffff:198.51.100.1"}
	got, err := s.ExemptPrefixes()
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("198.51.100.1/32")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ExemptPrefixes = %v, %v; want %v", got, err, want)
	}
}
