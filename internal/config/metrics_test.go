package config

import (
	"errors"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	for _, c := range []struct {
		listen        string
		public        bool
		bad           bool
		refusedPublic bool // refused for not being loopback
	}{
		{listen: ""},
		{listen: "127.0.0.1:9393"},
		{listen: "127.0.0.2:9393"},
		{listen: "[::1]:9393"},
		{listen: "localhost:9393"},
		{listen: "0.0.0.0:9393", bad: true, refusedPublic: true},
		{listen: ":9393", bad: true, refusedPublic: true},
		{listen: "192.0.2.1:9393", bad: true, refusedPublic: true},
		{listen: "[::]:9393", bad: true, refusedPublic: true},
		{listen: "metrics.example.test:9393", bad: true, refusedPublic: true},
		{listen: "0.0.0.0:9393", public: true},
		{listen: "9393", bad: true},
	} {
		errs := Metrics{Listen: c.listen, AllowPublic: c.public}.validate()
		if (len(errs) > 0) != c.bad {
			t.Errorf("%q allow_public=%v: errors %v, want bad=%v", c.listen, c.public, errs, c.bad)
			continue
		}
		if c.bad && errors.Is(errs[0], errMetricsPublic) != c.refusedPublic {
			t.Errorf("%q: %v, want public=%v", c.listen, errs[0], c.refusedPublic)
		}
	}
}
