package config

import (
	"errors"
	"testing"
	"time"
)

func TestAdminListen(t *testing.T) {
	for _, c := range []struct {
		listen        string
		tls           bool
		bad           bool
		refusedPublic bool // refused for not being loopback
	}{
		{listen: ""},
		{listen: "127.0.0.1:8025"},
		{listen: "[::1]:8025"},
		{listen: "localhost:8025"},
		{listen: "0.0.0.0:8025", bad: true, refusedPublic: true},
		{listen: ":8025", bad: true, refusedPublic: true},
		{listen: "192.0.2.1:8025", bad: true, refusedPublic: true},
		{listen: "admin.example.test:8025", bad: true, refusedPublic: true},
		{listen: "192.0.2.1:8025", tls: true},
		{listen: "127.0.0.1:8025", tls: true},
		{listen: "8025", bad: true},
	} {
		errs := Admin{Listen: c.listen, TLS: c.tls, SessionTimeout: Duration{time.Hour}}.validate()
		if (len(errs) > 0) != c.bad {
			t.Errorf("%q tls=%v: errors %v, want bad=%v", c.listen, c.tls, errs, c.bad)
			continue
		}
		if c.bad && errors.Is(errs[0], errAdminPublic) != c.refusedPublic {
			t.Errorf("%q: %v, want public=%v", c.listen, errs[0], c.refusedPublic)
		}
	}
	if errs := (Admin{Listen: "127.0.0.1:8025"}).validate(); len(errs) != 1 {
		t.Errorf("no session timeout: %v, want one error", errs)
	}
	if a := Default().Admin; a.Listen != "" || a.SessionTimeout.Duration != DefaultAdminSession {
		t.Errorf("default admin = %+v: want off, with the default session", a)
	}
}
