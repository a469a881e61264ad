package policy

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
)

// MaxLockMessageLen is the longest lock message Validate accepts.
const MaxLockMessageLen = 512

// LockTarget says whom a lock applies to. When both fields are set, a user
// must match both (that user, while holding that role).
type LockTarget struct {
	User string `json:"user,omitempty" yaml:"user,omitempty"`
	Role string `json:"role,omitempty" yaml:"role,omitempty"`
}

// IsEmpty reports whether the target names nobody.
func (t LockTarget) IsEmpty() bool { return t.User == "" && t.Role == "" }

// String describes the target, e.g. "user alice" or "role contractor".
func (t LockTarget) String() string {
	switch {
	case t.User != "" && t.Role != "":
		return "user " + t.User + " with role " + t.Role
	case t.User != "":
		return "user " + t.User
	case t.Role != "":
		return "role " + t.Role
	}
	return "nobody"
}

// Lock refuses new sessions and certificates to its target, and ends
// running sessions, until it expires or is removed.
type Lock struct {
	Name      string     `json:"name" yaml:"name"` // see ValidateName
	Target    LockTarget `json:"target" yaml:"target"`
	Message   string     `json:"message,omitempty" yaml:"message,omitempty"`       // shown to the locked user
	Expires   time.Time  `json:"expires,omitzero" yaml:"expires,omitempty"`        // zero: never
	CreatedBy string     `json:"created_by,omitempty" yaml:"created_by,omitempty"` // the administrator who set it
	Created   time.Time  `json:"created,omitzero" yaml:"created,omitempty"`
}

// Validate checks the lock's name, target and message. It returns a
// [*ValidationError].
func (l Lock) Validate() error {
	fail := func(field, reason string) error {
		return &ValidationError{Kind: "lock", Name: l.Name, Field: field, Reason: reason}
	}
	if reason := nameProblem(l.Name); reason != "" {
		return fail("name", reason)
	}
	if l.Target.IsEmpty() {
		return fail("target", "a lock needs a target user or role")
	}
	if l.Target.User != "" {
		if reason := nameProblem(l.Target.User); reason != "" {
			return fail("target.user", reason)
		}
	}
	if l.Target.Role != "" {
		if reason := nameProblem(l.Target.Role); reason != "" {
			return fail("target.role", reason)
		}
	}
	if len(l.Message) > MaxLockMessageLen {
		return fail("message", "the message is longer than 512 bytes")
	}
	return nil
}

// Matches reports whether the lock targets an identity with the given name
// and roles. A lock with an empty target matches nobody. Expiry is not
// considered: see [Lock.Expired].
func (l Lock) Matches(username string, roles []string) bool {
	if l.Target.IsEmpty() {
		return false
	}
	if l.Target.User != "" && l.Target.User != username {
		return false
	}
	if l.Target.Role != "" && !slices.Contains(roles, l.Target.Role) {
		return false
	}
	return true
}

// Expired reports whether the lock has expired at now. A lock without an
// expiry never expires; one expires at exactly its Expires time.
func (l Lock) Expired(now time.Time) bool {
	return !l.Expires.IsZero() && !now.Before(l.Expires)
}

// CheckLocks returns a [*LockError] for the first lock in locks that matches
// the identity and has not expired at now, or nil.
func CheckLocks(locks []Lock, username string, roles []string, now time.Time) error {
	for _, l := range locks {
		if l.Matches(username, roles) && !l.Expired(now) {
			return &LockError{Username: username, Lock: l}
		}
	}
	return nil
}

// LockError says that an identity is locked.
type LockError struct {
	Username string // the locked identity
	Lock     Lock   // the lock that matched
}

// Error returns e.g. "user alice is locked: suspicious activity; ask an
// administrator to remove the lock".
func (e *LockError) Error() string {
	var b strings.Builder
	b.WriteString("user ")
	b.WriteString(e.Username)
	b.WriteString(" is locked")
	if e.Lock.Target.Role != "" {
		b.WriteString(" by a lock on ")
		b.WriteString(e.Lock.Target.String())
	}
	if !e.Lock.Expires.IsZero() {
		b.WriteString(" until ")
		b.WriteString(e.Lock.Expires.UTC().Format(time.RFC3339))
	}
	if msg := oneLine(e.Lock.Message); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	b.WriteString("; ask an administrator to remove the lock")
	return b.String()
}

// IsLocked reports whether err is or wraps a [*LockError].
func IsLocked(err error) bool {
	var e *LockError
	return errors.As(err, &e)
}

// oneLine makes a message fit in one sentence: control characters become
// spaces, runs of spaces collapse, and a final period is dropped.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	return strings.TrimSuffix(s, ".")
}
