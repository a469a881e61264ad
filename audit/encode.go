package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Append-style JSON encoding of the events written on the hot path (every
// statement of a database session is one event), without reflection.
// Each encoder's output is byte for byte what encoding/json writes for the
// same value with SetEscapeHTML(false) (or, where noted, with HTML
// escaping, as json.Marshal does); encode_test.go checks this with random
// values and a fuzz target.

// appendEvent appends e's JSON, as MarshalEvent returns it, to buf. ok is
// false when e has no encoder of its own, or its encoder failed (a time
// that RFC 3339 cannot represent): then buf is unchanged and the caller
// uses encoding/json, which also produces the error (or "null" for a nil
// pointer, or the error for a RawEvent nested too deep).
//
// The types are listed one by one, not found through an interface:
// methods are promoted through embedding, so an embedder's event that
// embeds one of these structs and adds fields would otherwise be encoded
// without them.
func appendEvent(buf []byte, e Event) (out []byte, ok bool) {
	var (
		a        interface{ appendJSON([]byte) ([]byte, error) }
		fallback bool
	)
	switch e := e.(type) {
	case *RawEvent:
		a, fallback = e, e == nil || e.deep
	case *DatabaseSessionStart:
		a, fallback = e, e == nil
	case *DatabaseSessionEnd:
		a, fallback = e, e == nil
	case *DatabaseSessionQuery:
		a, fallback = e, e == nil
	case *PostgresParse:
		a, fallback = e, e == nil
	case *PostgresBind:
		a, fallback = e, e == nil
	case *PostgresExecute:
		a, fallback = e, e == nil
	case *PostgresClose:
		a, fallback = e, e == nil
	case *PostgresFunctionCall:
		a, fallback = e, e == nil
	case *MySQLStatementPrepare:
		a, fallback = e, e == nil
	case *MySQLStatementExecute:
		a, fallback = e, e == nil
	case *MySQLStatementSendLongData:
		a, fallback = e, e == nil
	case *MySQLStatementClose:
		a, fallback = e, e == nil
	case *MySQLStatementReset:
		a, fallback = e, e == nil
	case *MySQLStatementFetch:
		a, fallback = e, e == nil
	case *MySQLInitDB:
		a, fallback = e, e == nil
	case *MySQLCreateDB:
		a, fallback = e, e == nil
	case *MySQLDropDB:
		a, fallback = e, e == nil
	case *MySQLProcessKill:
		a, fallback = e, e == nil
	}
	if a == nil || fallback {
		return buf, false
	}
	out, err := a.appendJSON(buf)
	if err != nil {
		return buf, false
	}
	return out, true
}

// sizeHint is about the size of e's JSON, for the buffer MarshalEvent
// encodes it into: the common keys of a database-session event, plus its
// SQL and parameters.
func sizeHint(e Event) int {
	const base = 512
	params := func(ps []*string) (n int) {
		for _, p := range ps {
			n += 8
			if p != nil {
				n += len(*p)
			}
		}
		return n
	}
	switch e := e.(type) {
	case *RawEvent:
		if e != nil {
			return e.size()
		}
	case *DatabaseSessionQuery:
		if e != nil {
			return base + len(e.Query)
		}
	case *PostgresParse:
		if e != nil {
			return base + len(e.Query)
		}
	case *PostgresBind:
		if e != nil {
			return base + len(e.Query) + params(e.Parameters)
		}
	case *PostgresExecute:
		if e != nil {
			return base + len(e.Query)
		}
	case *PostgresFunctionCall:
		if e != nil {
			return base + params(e.FunctionArgs)
		}
	case *MySQLStatementPrepare:
		if e != nil {
			return base + len(e.Query)
		}
	case *MySQLStatementExecute:
		if e != nil {
			return base + len(e.Query) + params(e.Parameters)
		}
	}
	return base
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json does:
// ", \ and control characters escaped (\b, \f, \n, \r, \t by name, others
// as \u00XX), invalid UTF-8 replaced by \ufffd, U+2028 and U+2029 escaped,
// and, if html is set, <, > and & escaped as \u003c, \u003e and \u0026.
func appendString(buf []byte, s string, html bool) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && (!html || (b != '<' && b != '>' && b != '&')) {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// appendTime appends t as encoding/json writes a time.Time: a quoted RFC
// 3339 time with nanoseconds. It fails, like encoding/json, for a year
// outside 0..9999 or a zone offset of 24 hours or more.
func appendTime(buf []byte, t time.Time) ([]byte, error) {
	buf = append(buf, '"')
	buf, err := t.AppendText(buf)
	if err != nil {
		return nil, err
	}
	return append(buf, '"'), nil
}

// appendStringArray appends ss as a JSON array of strings ("null" when nil,
// as encoding/json writes a nil slice).
func appendStringArray(buf []byte, ss []string) []byte {
	if ss == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, s, false)
	}
	return append(buf, ']')
}

// appendNullableStringArray appends ps as a JSON array whose nil elements
// are null ("null" when ps is nil).
func appendNullableStringArray(buf []byte, ps []*string) []byte {
	if ps == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '[')
	for i, p := range ps {
		if i > 0 {
			buf = append(buf, ',')
		}
		if p == nil {
			buf = append(buf, "null"...)
		} else {
			buf = appendString(buf, *p, false)
		}
	}
	return append(buf, ']')
}

// appendStringMember appends ,"key": and the string s. key is a literal that
// needs no escaping.
func appendStringMember(buf []byte, key, s string) []byte {
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return appendString(buf, s, false)
}

// appendOptStringMember is appendStringMember for an omitempty field.
func appendOptStringMember(buf []byte, key, s string) []byte {
	if s == "" {
		return buf
	}
	return appendStringMember(buf, key, s)
}

func appendIntMember(buf []byte, key string, v int64) []byte {
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return strconv.AppendInt(buf, v, 10)
}

func appendUintMember(buf []byte, key string, v uint64) []byte {
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return strconv.AppendUint(buf, v, 10)
}

func appendBoolMember(buf []byte, key string, v bool) []byte {
	buf = append(buf, ',', '"')
	buf = append(buf, key...)
	buf = append(buf, '"', ':')
	return strconv.AppendBool(buf, v)
}

// appendMetadata opens the object and appends the [Metadata] keys.
func appendMetadata(buf []byte, m *Metadata) ([]byte, error) {
	buf = append(buf, `{"event":`...)
	buf = appendString(buf, m.Type, false)
	buf = appendStringMember(buf, "code", m.Code)
	buf = appendStringMember(buf, "uid", m.ID)
	buf = append(buf, `,"time":`...)
	buf, err := appendTime(buf, m.Time)
	if err != nil {
		return nil, err
	}
	return appendOptStringMember(buf, "cluster_name", m.ClusterName), nil
}

// appendStatus appends the [Status] keys.
func appendStatus(buf []byte, s *Status) []byte {
	buf = appendBoolMember(buf, "success", s.Success)
	return appendOptStringMember(buf, "error", s.Error)
}

// appendDBSession appends the [DatabaseSessionMetadata] keys.
func appendDBSession(buf []byte, d *DatabaseSessionMetadata) []byte {
	buf = appendStringMember(buf, "sid", d.SessionID)
	buf = appendStringMember(buf, "user", d.User)
	if len(d.Roles) > 0 {
		buf = append(buf, `,"roles":`...)
		buf = appendStringArray(buf, d.Roles)
	}
	buf = appendOptStringMember(buf, "impersonator", d.Impersonator)
	buf = appendOptStringMember(buf, "db_service", d.DatabaseService)
	buf = appendOptStringMember(buf, "db_protocol", d.DatabaseProtocol)
	buf = appendOptStringMember(buf, "db_user", d.DatabaseUser)
	buf = appendOptStringMember(buf, "db_name", d.DatabaseName)
	return appendOptStringMember(buf, "client_addr", d.ClientAddr)
}

// appendDBHead appends the keys every database-session event starts with:
// [Metadata] and [DatabaseSessionMetadata].
func appendDBHead(buf []byte, m *Metadata, d *DatabaseSessionMetadata) ([]byte, error) {
	buf, err := appendMetadata(buf, m)
	if err != nil {
		return nil, err
	}
	return appendDBSession(buf, d), nil
}
