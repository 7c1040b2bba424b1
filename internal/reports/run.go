package reports

import (
	"context"
	"crypto/rand"
	"math/big"
	"time"
)

// Jitter bounds the random wait after UTC midnight (and after start) before reports are sent,
// so that servers do not all send at 00:00 (RFC 7489 §7.2 asks receivers to spread reports).
const Jitter = 30 * time.Minute

// Run sends the reports of each day after UTC midnight, plus a random wait up to Jitter, until
// ctx is done. It also sends, soon after it starts, those of past days left unsent (the
// server was down at midnight).
func (s *Sender) Run(ctx context.Context) {
	wait := s.o.Jitter(5 * time.Minute)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sent, err := s.Send(ctx, false)
		if err != nil {
			s.log.Warn("reports: daily run", "err", err, "reports", len(sent))
		}
		now := s.o.Now().UTC()
		wait = now.Truncate(24*time.Hour).Add(24*time.Hour).Sub(now) + s.o.Jitter(Jitter)
	}
}

// RandomJitter is a random duration in [0, max): SenderOptions.Jitter's default.
func RandomJitter(max time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
	if err != nil {
		return max / 2
	}
	return time.Duration(n.Int64())
}
