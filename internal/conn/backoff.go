package conn

import (
	"math/rand/v2"
	"time"
)

// Backoff is exponential with jitter: attempt 1 waits about Min, each later
// attempt twice as long, never more than Max. Jitter of ±20% keeps many
// clients that lost a broker at once from reconnecting in lockstep.
type Backoff struct{ Min, Max time.Duration }

// Delay returns the wait before attempt n (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}
