package auth

import (
	"sync"
	"time"
)

// maxLimiterEntries bounds the limiter's memory under a spray of usernames
// or addresses; past it, expired entries are dropped first.
const maxLimiterEntries = 100_000

// loginLimiter counts failed logins per username and per source address in
// fixed windows that start at the first failure.
type loginLimiter struct {
	perUser, perSource int
	window             time.Duration
	clock              func() time.Time

	mu      sync.Mutex
	entries map[string]*attempts
}

type attempts struct {
	failures int
	start    time.Time
}

func newLoginLimiter(perUser, perSource int, window time.Duration, clock func() time.Time) *loginLimiter {
	return &loginLimiter{perUser: perUser, perSource: perSource, window: window, clock: clock,
		entries: map[string]*attempts{}}
}

// check returns how long the caller must wait, or 0 if it may try now.
func (l *loginLimiter) check(user, source string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	wait := l.waitLocked("u:"+user, l.perUser, now)
	if w := l.waitLocked("s:"+source, l.perSource, now); w > wait {
		wait = w
	}
	return wait
}

func (l *loginLimiter) waitLocked(key string, max int, now time.Time) time.Duration {
	a := l.entries[key]
	if a == nil {
		return 0
	}
	end := a.start.Add(l.window)
	if !now.Before(end) {
		delete(l.entries, key)
		return 0
	}
	if a.failures >= max {
		return end.Sub(now)
	}
	return 0
}

// fail records a failed login.
func (l *loginLimiter) fail(user, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	if len(l.entries) >= maxLimiterEntries {
		l.pruneLocked(now)
	}
	for _, key := range []string{"u:" + user, "s:" + source} {
		a := l.entries[key]
		if a == nil || !now.Before(a.start.Add(l.window)) {
			if len(l.entries) >= maxLimiterEntries {
				continue // full of live entries: the per-entry limits still hold for those
			}
			a = &attempts{start: now}
			l.entries[key] = a
		}
		a.failures++
	}
}

// succeed forgets the user's failures (not the source's).
func (l *loginLimiter) succeed(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, "u:"+user)
}

func (l *loginLimiter) pruneLocked(now time.Time) {
	for k, a := range l.entries {
		if !now.Before(a.start.Add(l.window)) {
			delete(l.entries, k)
		}
	}
}
