package tunnel

import "time"

// Backoff is an agent's reconnect policy: exponential backoff with full
// jitter. After the n-th consecutive failure (n from 0) the agent waits a
// uniformly random time in [0, min(Cap, Base x 2^n)), so agents cut off
// together by a proxy restart spread their reconnects out instead of
// stampeding the new proxy. A tunnel that stayed up for StableAfter resets n.
type Backoff struct {
	// Base is the first ceiling. Zero means 250ms.
	Base time.Duration
	// Cap is the largest ceiling. Zero means 30s.
	Cap time.Duration
	// StableAfter is how long a tunnel must live to reset the backoff.
	// Zero means 10s.
	StableAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 250 * time.Millisecond
	}
	if b.Cap <= 0 {
		b.Cap = 30 * time.Second
	}
	if b.StableAfter <= 0 {
		b.StableAfter = 10 * time.Second
	}
	return b
}

// Ceiling is the upper bound of the wait after the n-th consecutive failure.
func (b Backoff) Ceiling(n int) time.Duration {
	b = b.withDefaults()
	if n < 0 {
		n = 0
	}
	if n >= 62 {
		return b.Cap
	}
	d := b.Base << n
	if d <= 0 || d > b.Cap || d>>n != b.Base {
		return b.Cap
	}
	return d
}

// Delay is the wait after the n-th consecutive failure for a uniform random
// r in [0, 1).
func (b Backoff) Delay(n int, r float64) time.Duration {
	return time.Duration(r * float64(b.Ceiling(n)))
}
