package policy

import (
	"errors"
	"strconv"
	"strings"
)

// MaxNameLen is the longest name a user, role or lock may have.
const MaxNameLen = 64

// ValidationError reports a resource (a role, a lock, a name) that is not
// valid. Callers such as the Auth service map it to a "bad request" answer.
type ValidationError struct {
	Kind   string // what was being checked: "role", "lock", "user name", ...
	Name   string // the resource's name when known
	Line   int    // line in the YAML document when known, else 0
	Field  string // path of the offending field, e.g. "spec.allow.db_users[0]"; "" for the whole resource
	Reason string // what is wrong and what to write instead
}

// Error returns one sentence, e.g.
// `invalid role "dev" (line 7): spec.options: unknown field "max_ttl"; known fields: ...`.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.Kind)
	if e.Name != "" {
		b.WriteByte(' ')
		b.WriteString(quoteShort(e.Name))
	}
	if e.Line > 0 {
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(')')
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// IsValidationError reports whether err is or wraps a [*ValidationError].
func IsValidationError(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// ValidateName checks the name of a user, role or lock: 1 to [MaxNameLen]
// characters from lowercase letters, digits, '-', '_', '.' and '@', starting
// with a letter or digit (so that a name is never "..", nor mistaken for a
// command-line flag). kind ("user", "role", "lock") names the resource in the
// error.
func ValidateName(kind, name string) error {
	if reason := nameProblem(name); reason != "" {
		return &ValidationError{Kind: kind + " name", Name: name, Reason: reason}
	}
	return nil
}

// nameProblem returns why name is not a valid resource name, or "".
func nameProblem(name string) string {
	const rule = "use 1 to 64 characters from lowercase letters, digits, '-', '_', '.' and '@', starting with a letter or digit"
	if name == "" {
		return "the name is empty; " + rule
	}
	if len(name) > MaxNameLen {
		return "the name is longer than 64 characters; " + rule
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.' || c == '@'):
		default:
			return rule
		}
	}
	return ""
}

// quoteShort quotes s for an error message, cutting it to a readable length.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		// Cut on a rune boundary so the quoted text stays valid UTF-8.
		cut := max
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
