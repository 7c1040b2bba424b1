package app

import (
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/remote"
	"github.com/tern-mail/tern/internal/metrics"
)

// The flush still finds the remote deliverer under the metrics' wrapper (to forget the
// servers it found down).
func TestRemoteDelivererUnwrapped(t *testing.T) {
	rd, err := remote.New(remote.Options{Hostname: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]delivery.BatchDeliverer{
		"plain":   rd,
		"wrapped": metrics.New().Batch(metrics.TransportRemote, rd),
	} {
		if got, ok := remoteDeliverer(d); !ok || got != rd {
			t.Errorf("%s: remoteDeliverer = %p, %v; want %p", name, got, ok, rd)
		}
	}
	if _, ok := remoteDeliverer(nil); ok {
		t.Error("no deliverer found one")
	}
}
