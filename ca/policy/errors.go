package policy

import (
	"errors"
	"strconv"
	"strings"
)

// AccessDeniedError is a refusal by an [AccessChecker]. Error returns one
// sentence that says what was refused and why, naming only the caller's own
// roles and allowed values.
type AccessDeniedError struct {
	// Database, DBUser and DBName describe a refused database session
	// (CheckDatabaseAccess); they are empty for rule checks.
	Database string
	DBUser   string
	DBName   string
	// Resource and Verb describe a refused cluster operation (CheckRule).
	Resource string
	Verb     string
	// Role is the role whose deny block refused access; "" when access was
	// refused because no role allows it.
	Role string
	// Reason is the part of the sentence after the colon.
	Reason string
}

// Error returns e.g. `access to database "pg1" as db user "root" denied:
// role "no-root" denies db user "root"`.
func (e *AccessDeniedError) Error() string {
	var b strings.Builder
	switch {
	case e.Resource != "" || e.Verb != "":
		b.WriteString("not allowed to ")
		b.WriteString(e.Verb)
		b.WriteByte(' ')
		b.WriteString(e.Resource)
	default:
		b.WriteString("access to database ")
		b.WriteString(strconv.Quote(e.Database))
		if e.DBUser != "" {
			b.WriteString(" as db user ")
			b.WriteString(strconv.Quote(e.DBUser))
		}
		if e.DBName != "" {
			b.WriteString(" with db name ")
			b.WriteString(strconv.Quote(e.DBName))
		}
		b.WriteString(" denied")
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// IsAccessDenied reports whether err is or wraps an [*AccessDeniedError].
func IsAccessDenied(err error) bool {
	var e *AccessDeniedError
	return errors.As(err, &e)
}

// quoteList formats allowed values for an error message, at most ten.
func quoteList(values []string) string {
	const max = 10
	var b strings.Builder
	for i, v := range values {
		if i == max {
			b.WriteString(" and ")
			b.WriteString(strconv.Itoa(len(values) - max))
			b.WriteString(" more")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if plainValue(v) {
			b.WriteString(v)
		} else {
			b.WriteString(strconv.Quote(v))
		}
	}
	return b.String()
}

// plainValue reports whether v reads unambiguously without quotes.
func plainValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_-.:/@*", c) >= 0:
		default:
			return false
		}
	}
	return true
}
