package testutil

import (
	"net"
	"testing"
	"time"
)

// Trickle writes s to c one octet at a time, one every interval, as a slowloris client does,
// until all of s is sent, a write fails (the server closed the connection) or the test ends.
func Trickle(t testing.TB, c net.Conn, s string, every time.Duration) {
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range len(s) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
		}
	}()
}
