package postgres

import (
	"math/rand/v2"
	"time"
)

// backoff yields capped exponential retry delays with jitter. The jitter
// spreads the retries of many nodes after a shared Postgres outage, so they
// do not reconnect in lockstep; half of each delay is fixed, so a retry
// never comes immediately.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
	failures int
}

func newBackoff(minDelay, maxDelay time.Duration) *backoff {
	return &backoff{min: min(minDelay, maxDelay), max: maxDelay}
}

// next records a failure and returns how long to wait before retrying.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	b.failures++
	half := b.cur / 2
	return half + rand.N(half+1)
}

// reset starts the sequence over after a success.
func (b *backoff) reset() {
	b.cur = 0
	b.failures = 0
}
