package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Fields is an event decoded generically, as a search returns it: the JSON
// object with numbers kept as [json.Number]. It can hold events of any type,
// including types newer than this package. Marshal it with encoding/json to
// get the event's JSON back, and pass that to [UnmarshalEvent] for a
// concrete struct.
type Fields map[string]any

// GetString returns the string at key, or "" when it is absent or not a
// string.
func (f Fields) GetString(key string) string {
	s, _ := f[key].(string)
	return s
}

// Type returns the event type ("event").
func (f Fields) Type() string { return f.GetString("event") }

// Code returns the event code ("code").
func (f Fields) Code() string { return f.GetString("code") }

// ID returns the event ID ("uid").
func (f Fields) ID() string { return f.GetString("uid") }

// User returns the user the event is about ("user"), or "" for events
// without one (such as agent.join).
func (f Fields) User() string { return f.GetString("user") }

// ClusterName returns the cluster the event happened in ("cluster_name").
func (f Fields) ClusterName() string { return f.GetString("cluster_name") }

// Time returns the event time ("time"), or the zero time when it is absent
// or malformed.
func (f Fields) Time() time.Time {
	t, err := time.Parse(time.RFC3339Nano, f.GetString("time"))
	if err != nil {
		return time.Time{}
	}
	return t
}

// MarshalEvent returns e's JSON exactly as sinks write it: one compact line
// without a trailing newline, with <, > and & left unescaped so that SQL
// reads naturally. It does not stamp the event.
func MarshalEvent(e Event) ([]byte, error) {
	if line, ok := appendEvent(make([]byte, 0, sizeHint(e)), e); ok {
		return line, nil
	}
	return marshalEventReflect(e)
}

// appendMarshalEvent appends MarshalEvent's output to buf.
func appendMarshalEvent(buf []byte, e Event) ([]byte, error) {
	if out, ok := appendEvent(buf, e); ok {
		return out, nil
	}
	line, err := marshalEventReflect(e)
	if err != nil {
		return buf, err
	}
	return append(buf, line...), nil
}

// marshalEventReflect is MarshalEvent through encoding/json, for the
// events without an encoder of their own (see appendEvent).
func marshalEventReflect(e Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("audit: cannot encode %T: %w", e, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// ToFields returns e in its generic form, as a search would return it.
func ToFields(e Event) (Fields, error) {
	data, err := MarshalEvent(e)
	if err != nil {
		return nil, err
	}
	return decodeFields(data)
}

// UnknownEventTypeError is returned by [UnmarshalEvent] for an event type
// that this package has no struct for (a custom or newer event). Such events
// are still readable as [Fields].
type UnknownEventTypeError struct {
	Type string
}

func (e *UnknownEventTypeError) Error() string {
	return fmt.Sprintf("audit: unknown event type %q; read it as audit.Fields instead", e.Type)
}

// IsUnknownEventType reports whether err is or wraps an
// [*UnknownEventTypeError].
func IsUnknownEventType(err error) bool {
	var u *UnknownEventTypeError
	return errors.As(err, &u)
}

// UnmarshalEvent decodes the JSON of an event of a type defined in this
// package into its struct (*UserLogin, *CertificateCreate, *ResourceChange,
// *AgentJoin, *AccessDenied, and the database-session structs such as
// *DatabaseSessionQuery). Unknown JSON keys are ignored, so events
// written by newer versions decode.
func UnmarshalEvent(data []byte) (Event, error) {
	var head struct {
		Type string `json:"event"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("audit: cannot decode event: %w", err)
	}
	var e Event
	switch head.Type {
	case TypeUserLogin:
		e = &UserLogin{}
	case TypeCertCreate:
		e = &CertificateCreate{}
	case TypeUserCreate, TypeUserUpdate, TypeUserDelete,
		TypeRoleCreate, TypeRoleUpdate, TypeRoleDelete,
		TypeLockCreate, TypeLockDelete,
		TypeJoinTokenCreate, TypeJoinTokenDelete:
		e = &ResourceChange{}
	case TypeAgentJoin:
		e = &AgentJoin{}
	case TypeAccessDenied:
		e = &AccessDenied{}
	default:
		if e = newDBEvent(head.Type); e == nil {
			return nil, &UnknownEventTypeError{Type: head.Type}
		}
	}
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("audit: cannot decode %s event: %w", head.Type, err)
	}
	return e, nil
}

// decodeFields decodes one JSON line into Fields. The line must be a single
// JSON object with a non-empty string "event".
func decodeFields(line []byte) (Fields, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var f Fields
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("audit: trailing data after the event")
	}
	if f == nil || f.Type() == "" {
		return nil, errors.New(`audit: line has no "event" type`)
	}
	return f, nil
}
