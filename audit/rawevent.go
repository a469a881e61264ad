package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// KeyForwardedBy is the JSON key under which the Auth service records the
// host ID of the agent or proxy that forwarded an event to it ([RawEvent]).
// Only events that reached the audit log through a [Forwarder] carry it.
const KeyForwardedBy = "forwarded_by"

// RawEvent is an event held as the JSON object it arrived as, for a
// receiver that records events from other components (the Auth service
// writing what agents forward). Keys other than the metadata are kept
// byte for byte, in their order, including keys and event types this
// package does not know, so nothing a newer sender wrote is dropped.
//
// Metadata (and ForwardedBy) are decoded from the object and may be
// changed; MarshalJSON writes them first ("event", "code", "uid", "time",
// "cluster_name", "forwarded_by"), then the other keys as received.
type RawEvent struct {
	Metadata
	// ForwardedBy is the host that forwarded the event ([KeyForwardedBy]);
	// "" omits the key.
	ForwardedBy string

	fields []rawField // the other top-level keys, in order
	// deep is set when a value nests as deep as encoding/json allows, so
	// that the event as a whole is one level too deep for it: then
	// MarshalEvent fails as it always has (see appendEvent).
	deep bool
}

// rawField is one top-level key of a RawEvent other than the metadata.
type rawField struct {
	// key is the key as a JSON string, written as json.Marshal writes it
	// (escaped, HTML characters included), so that equal keys are equal
	// strings however the sender escaped them.
	key string
	// value is the value's JSON, compact.
	value string
}

// maxJSONDepth is how deep encoding/json lets arrays and objects nest.
const maxJSONDepth = 10000

// rawIndexAt is the number of keys from which the parser finds duplicate
// keys with a map rather than by comparing with each key before.
const rawIndexAt = 32

// ParseRawEvent decodes one event. data must be a single JSON object with
// a non-empty string "event", no key twice, and, where present, string
// "code", "uid", "cluster_name" and "forwarded_by" and an RFC 3339 "time".
// Other values may be any JSON.
//
// The event does not keep a reference to data.
func ParseRawEvent(data []byte) (*RawEvent, error) {
	p := rawParser{s: string(data), data: data}
	e, err := p.parse()
	if err == errRawSyntax {
		// Describe the mistake as encoding/json does.
		var v json.RawMessage
		if jerr := json.Unmarshal(data, &v); jerr != nil {
			return nil, fmt.Errorf("audit: event is not valid JSON: %w", jerr)
		}
		return nil, errors.New("audit: event is not valid JSON")
	}
	return e, err
}

// errRawSyntax is the parser's own signal for invalid JSON; ParseRawEvent
// replaces it with encoding/json's description.
var errRawSyntax = errors.New("audit: event is not valid JSON")

// rawParser parses one event in a single pass over its JSON. s is the
// parser's own copy of data: the event's strings and values are slices of
// it. data is the caller's bytes, only read (by encoding/json for values
// it checks).
type rawParser struct {
	s    string
	data []byte
	i    int

	meta  metaSet             // the metadata keys seen
	index map[string]struct{} // the other keys, once there are rawIndexAt
	deep  bool                // a value nests maxJSONDepth deep
}

func (p *rawParser) parse() (*RawEvent, error) {
	s := p.s
	p.skipSpace()
	if p.i == len(s) || s[p.i] != '{' {
		return nil, errors.New("audit: an event must be a JSON object")
	}
	p.i++
	e := &RawEvent{fields: make([]rawField, 0, 16)}
	for first := true; ; first = false {
		p.skipSpace()
		if first && p.i < len(s) && s[p.i] == '}' {
			p.i++
			break
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		if p.seen(e, key) {
			return nil, fmt.Errorf("audit: event has the key %q twice", unquote(key))
		}
		p.skipSpace()
		if p.i == len(s) || s[p.i] != ':' {
			return nil, errRawSyntax
		}
		p.i++
		p.skipSpace()
		value, err := p.value()
		if err != nil {
			return nil, err
		}
		if err := e.setKey(key, value); err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i == len(s) {
			return nil, errRawSyntax
		}
		c := s[p.i]
		p.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, errRawSyntax
		}
	}
	p.skipSpace()
	if p.i != len(s) {
		return nil, errors.New("audit: data after the event's JSON object")
	}
	if e.Type == "" {
		return nil, errors.New(`audit: event has no "event" type`)
	}
	e.deep = p.deep
	return e, nil
}

func (p *rawParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// key reads an object key and returns it as json.Marshal would write it.
func (p *rawParser) key() (string, error) {
	if p.i == len(p.s) || p.s[p.i] != '"' {
		return "", errRawSyntax
	}
	start := p.i
	plain, err := p.str()
	if err != nil {
		return "", err
	}
	q := p.s[start:p.i]
	if plain && !strings.ContainsAny(q, "<>&") {
		return q, nil // already as json.Marshal writes it
	}
	return string(appendString(nil, unquote(q), true)), nil
}

// str reads a JSON string starting at its opening quote and checks it.
// plain reports that it has no escapes and only ASCII characters, so that
// its text is the bytes between the quotes.
func (p *rawParser) str() (plain bool, err error) {
	s := p.s
	plain = true
	for i := p.i + 1; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			continue
		}
		switch {
		case c == '"':
			p.i = i + 1
			return plain, nil
		case c < 0x20:
			return false, errRawSyntax
		case c >= utf8.RuneSelf:
			plain = false
		default: // a backslash
			plain = false
			i++
			if i == len(s) {
				return false, errRawSyntax
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) {
					return false, errRawSyntax
				}
				i += 4
			default:
				return false, errRawSyntax
			}
		}
	}
	return false, errRawSyntax
}

// value reads and checks one JSON value and returns it compact.
func (p *rawParser) value() (string, error) {
	s := p.s
	if p.i == len(s) {
		return "", errRawSyntax
	}
	start := p.i
	switch c := s[p.i]; {
	case c == '"':
		if _, err := p.str(); err != nil {
			return "", err
		}
	case c == '{' || c == '[':
		return p.composite()
	case c == '-' || ('0' <= c && c <= '9'):
		if !p.number() {
			return "", errRawSyntax
		}
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return "", errRawSyntax
	}
	return s[start:p.i], nil
}

func (p *rawParser) literal(lit string) (string, error) {
	if len(p.s)-p.i < len(lit) || p.s[p.i:p.i+len(lit)] != lit {
		return "", errRawSyntax
	}
	p.i += len(lit)
	return lit, nil
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *rawParser) number() bool {
	s, i := p.s, p.i
	if s[i] == '-' {
		i++
	}
	digits := func() bool {
		n := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	p.i = i
	return true
}

// composite reads an object or array: it finds the end (the bracket that
// closes the first), lets encoding/json check what is between, and
// compacts it if it holds whitespace.
func (p *rawParser) composite() (string, error) {
	s := p.s
	start, depth, deepest := p.i, 0, 0
	for i := p.i; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
			if depth > 0 {
				continue
			}
			p.i = i + 1
			raw := p.data[start:p.i]
			if !json.Valid(raw) {
				return "", errRawSyntax
			}
			p.deep = p.deep || deepest >= maxJSONDepth
			if !strings.ContainsAny(s[start:p.i], " \t\n\r") {
				return s[start:p.i], nil
			}
			var buf bytes.Buffer
			buf.Grow(len(raw))
			if err := json.Compact(&buf, raw); err != nil {
				return "", errRawSyntax
			}
			return buf.String(), nil
		case '"':
			p.i = i
			if _, err := p.str(); err != nil {
				return "", err
			}
			i = p.i - 1
		}
	}
	return "", errRawSyntax
}

// setKey stores one top-level key of the event being parsed; key is as
// json.Marshal writes it and value is compact JSON.
func (e *RawEvent) setKey(key, value string) error {
	var dst *string
	switch key {
	case `"event"`:
		dst = &e.Type
	case `"code"`:
		dst = &e.Code
	case `"uid"`:
		dst = &e.ID
	case `"cluster_name"`:
		dst = &e.ClusterName
	case `"forwarded_by"`:
		dst = &e.ForwardedBy
	case `"time"`:
		var s string
		if err := rawString(&s, key, value); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("audit: event time %q is not RFC 3339", s)
		}
		e.Time = t
		return nil
	default:
		e.fields = append(e.fields, rawField{key: key, value: value})
		return nil
	}
	return rawString(dst, key, value)
}

// seen records key (as json.Marshal writes it) and reports whether the
// event had it already.
func (p *rawParser) seen(e *RawEvent, key string) bool {
	if bit := metaBit(key); bit != 0 {
		dup := p.meta&bit != 0
		p.meta |= bit
		return dup
	}
	if p.index == nil && len(e.fields) < rawIndexAt {
		for _, f := range e.fields {
			if f.key == key {
				return true
			}
		}
		return false
	}
	if p.index == nil {
		p.index = make(map[string]struct{}, 2*rawIndexAt)
		for _, f := range e.fields {
			p.index[f.key] = struct{}{}
		}
	}
	if _, ok := p.index[key]; ok {
		return true
	}
	p.index[key] = struct{}{}
	return false
}

// rawString decodes the JSON value of a metadata key into dst. A string
// or null (which leaves dst alone, as encoding/json does) is accepted.
func rawString(dst *string, key, value string) error {
	switch {
	case value == "null":
		return nil
	case value[0] != '"':
		return fmt.Errorf("audit: event key %s must be a string", key)
	}
	*dst = unquote(value)
	return nil
}

// unquote returns the text of a checked JSON string, as encoding/json
// decodes it (invalid UTF-8 becomes U+FFFD).
func unquote(q string) string {
	inner := q[1 : len(q)-1]
	if strings.IndexByte(inner, '\\') < 0 && utf8.ValidString(inner) {
		return inner
	}
	var s string
	if err := json.Unmarshal([]byte(q), &s); err != nil {
		panic("audit: unquote of a checked JSON string failed: " + err.Error())
	}
	return s
}

// metaSet is a set of metadata keys.
type metaSet uint8

// metaBit is key's bit in a metaSet, or 0 for a key other than the
// metadata; key is as json.Marshal writes it.
func metaBit(key string) metaSet {
	switch key {
	case `"event"`:
		return 1
	case `"code"`:
		return 2
	case `"uid"`:
		return 4
	case `"time"`:
		return 8
	case `"cluster_name"`:
		return 16
	case `"forwarded_by"`:
		return 32
	}
	return 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Get returns the JSON value of a key other than the metadata keys, or nil
// when the event does not have it.
func (e *RawEvent) Get(key string) json.RawMessage {
	q := string(appendString(nil, key, true))
	for _, f := range e.fields {
		if f.key == q {
			return json.RawMessage(f.value)
		}
	}
	return nil
}

// MarshalJSON writes the metadata keys, then the other keys as received.
// Strings are escaped as by json.Marshal (<, > and & too).
func (e *RawEvent) MarshalJSON() ([]byte, error) {
	b, err := e.appendJSON(make([]byte, 0, e.size()))
	if err != nil {
		// encoding/json's error for the time, as before.
		if _, jerr := json.Marshal(e.Time); jerr != nil {
			return nil, jerr
		}
		return nil, err
	}
	return b, nil
}

// size is about the size of e's JSON.
func (e *RawEvent) size() int {
	n := 192 + len(e.Type) + len(e.Code) + len(e.ID) + len(e.ClusterName) + len(e.ForwardedBy)
	for _, f := range e.fields {
		n += len(f.key) + len(f.value) + 2
	}
	return n
}

// appendJSON appends MarshalJSON's output to buf.
func (e *RawEvent) appendJSON(buf []byte) ([]byte, error) {
	buf = append(buf, `{"event":`...)
	buf = appendString(buf, e.Type, true)
	buf = append(buf, `,"code":`...)
	buf = appendString(buf, e.Code, true)
	buf = append(buf, `,"uid":`...)
	buf = appendString(buf, e.ID, true)
	buf = append(buf, `,"time":`...)
	buf, err := appendTime(buf, e.Time)
	if err != nil {
		return nil, err
	}
	if e.ClusterName != "" {
		buf = append(buf, `,"cluster_name":`...)
		buf = appendString(buf, e.ClusterName, true)
	}
	if e.ForwardedBy != "" {
		buf = append(buf, `,"forwarded_by":`...)
		buf = appendString(buf, e.ForwardedBy, true)
	}
	for _, f := range e.fields {
		buf = append(buf, ',')
		buf = append(buf, f.key...)
		buf = append(buf, ':')
		buf = append(buf, f.value...)
	}
	return append(buf, '}'), nil
}
