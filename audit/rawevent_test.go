package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRawEventKeepsUnknownKeysInOrder(t *testing.T) {
	in := `{"event":"db.session.query", "uid":"u1","time":"2026-11-23T21:30:00+01:00","sid":"s1",
		"zeta":{"nested":[1, 2.50, "x<y"]},"query":"select 1 & 2","alpha":12345678901234567890,"forwarded_by":"evil","cluster_name":"other"}`
	e, err := ParseRawEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "db.session.query" || e.ID != "u1" || !e.Time.Equal(time.Date(2026, 11, 23, 20, 30, 0, 0, time.UTC)) ||
		e.ForwardedBy != "evil" || e.ClusterName != "other" || string(e.Get("sid")) != `"s1"` {
		t.Fatalf("parsed %+v", e)
	}
	e.ClusterName, e.ForwardedBy = "test", "agent-1"
	out, err := MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"db.session.query","code":"","uid":"u1","time":"2026-11-23T21:30:00+01:00","cluster_name":"test","forwarded_by":"agent-1",` +
		`"sid":"s1","zeta":{"nested":[1,2.50,"x<y"]},"query":"select 1 & 2","alpha":12345678901234567890}`
	if string(out) != want {
		t.Errorf("marshalled\n%s\nwant\n%s", out, want)
	}

	// Through a FileLog (which stamps the time to UTC) and back.
	log, err := NewFileLog(FileLogConfig{Dir: t.TempDir(), Durability: SyncEachEvent})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := log.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	res, err := log.Search(context.Background(), Query{})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("search: %v, %v", res, err)
	}
	ev := res.Events[0]
	if ev["alpha"].(json.Number).String() != "12345678901234567890" || ev.GetString(KeyForwardedBy) != "agent-1" ||
		ev["zeta"].(map[string]any)["nested"].([]any)[2] != "x<y" || ev.Time().Location() != time.UTC {
		t.Errorf("from the file: %v", ev)
	}
}

func TestParseRawEventRefuses(t *testing.T) {
	for _, in := range []string{
		``,
		`[]`,
		`"event"`,
		`{}`,
		`{"uid":"x"}`,
		`{"event":""}`,
		`{"event":5}`,
		`{"event":"a","event":"b"}`,
		`{"event":"a","x":1,"x":2}`,
		`{"event":"a","time":"yesterday"}`,
		`{"event":"a","uid":7}`,
		`{"event":"a"} {"event":"b"}`,
		`{"event":"a"}x`,
		`{"event":"a",}`,
		`{"event":"a","x":[}`,
	} {
		if e, err := ParseRawEvent([]byte(in)); err == nil {
			t.Errorf("ParseRawEvent(%q) = %+v, want an error", in, e)
		}
	}
}

func FuzzParseRawEvent(f *testing.F) {
	for _, seed := range []string{
		`{"event":"db.session.query","uid":"u","time":"2026-11-23T20:30:00Z","query":"select 1","n":[1,{"a":null}]}`,
		`{"event":"x","code":"C1","cluster_name":"c","forwarded_by":"h","b":true}`,
		`{"event":"x","x":"\u00e9\n"}`,
		`{"event":"a","event":"b"}`,
		`{ "event" : "x" , "y" : { } }`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseRawEvent(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal %q: %v", data, err)
		}
		again, err := ParseRawEvent(out)
		if err != nil {
			t.Fatalf("re-parse %s: %v", out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("not stable:\n%s\n%s (%v)", out, out2, err)
		}
	})
}

// refRawEvent is RawEvent as it was first written, with encoding/json's
// Decoder: the reference the single-pass parser is compared with
// (FuzzParseRawEventMatchesReference).
type refRawEvent struct {
	Metadata
	ForwardedBy string
	fields      []refRawField
}

type refRawField struct {
	key   string
	value json.RawMessage // compact
}

func refParseRawEvent(data []byte) (*refRawEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("audit: an event must be a JSON object")
	}
	e := &refRawEvent{}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("audit: event is not valid JSON: %w", err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, fmt.Errorf("audit: event has the key %q twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("audit: event is not valid JSON: %w", err)
		}
		if err := e.setKey(key, raw); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("audit: event is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("audit: data after the event's JSON object")
	}
	if e.Type == "" {
		return nil, errors.New(`audit: event has no "event" type`)
	}
	return e, nil
}

func (e *refRawEvent) setKey(key string, raw json.RawMessage) error {
	str := func(dst *string) error {
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("audit: event key %q must be a string", key)
		}
		return nil
	}
	switch key {
	case "event":
		return str(&e.Type)
	case "code":
		return str(&e.Code)
	case "uid":
		return str(&e.ID)
	case "cluster_name":
		return str(&e.ClusterName)
	case KeyForwardedBy:
		return str(&e.ForwardedBy)
	case "time":
		var s string
		if err := str(&s); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("audit: event time %q is not RFC 3339", s)
		}
		e.Time = t
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("audit: event key %q is not valid JSON: %w", key, err)
	}
	e.fields = append(e.fields, refRawField{key: key, value: buf.Bytes()})
	return nil
}

func (e *refRawEvent) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 0, 256)
	buf = append(buf, '{')
	add := func(key string, v any) error {
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(key)
		if err != nil {
			return err
		}
		buf = append(buf, k...)
		buf = append(buf, ':')
		var b []byte
		if raw, ok := v.(json.RawMessage); ok {
			b = raw
		} else if b, err = json.Marshal(v); err != nil {
			return err
		}
		buf = append(buf, b...)
		return nil
	}
	head := []struct {
		key  string
		v    any
		omit bool
	}{
		{"event", e.Type, false},
		{"code", e.Code, false},
		{"uid", e.ID, false},
		{"time", e.Time, false},
		{"cluster_name", e.ClusterName, e.ClusterName == ""},
		{KeyForwardedBy, e.ForwardedBy, e.ForwardedBy == ""},
	}
	for _, h := range head {
		if h.omit {
			continue
		}
		if err := add(h.key, h.v); err != nil {
			return nil, err
		}
	}
	for _, f := range e.fields {
		if err := add(f.key, f.value); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

const notJSON = "audit: event is not valid JSON"

// compareWithReference parses data with ParseRawEvent and the reference
// and fails t if they disagree: on whether data is an event, on the error
// (the same message, or both a JSON syntax error), or on anything the
// event holds or writes.
func compareWithReference(t *testing.T, data []byte) {
	t.Helper()
	ref, rerr := refParseRawEvent(data)
	got, err := ParseRawEvent(data)
	if (rerr == nil) != (err == nil) {
		t.Fatalf("ParseRawEvent(%q): error %v, reference %v", data, err, rerr)
	}
	if err != nil {
		if strings.HasPrefix(rerr.Error(), notJSON) != strings.HasPrefix(err.Error(), notJSON) ||
			!strings.HasPrefix(rerr.Error(), notJSON) && err.Error() != rerr.Error() {
			t.Fatalf("ParseRawEvent(%q): error %q, reference %q", data, err, rerr)
		}
		return
	}
	if !reflect.DeepEqual(got.Metadata, ref.Metadata) || got.ForwardedBy != ref.ForwardedBy {
		t.Fatalf("ParseRawEvent(%q): metadata %+v %q, reference %+v %q", data, got.Metadata, got.ForwardedBy, ref.Metadata, ref.ForwardedBy)
	}
	if len(got.fields) != len(ref.fields) {
		t.Fatalf("ParseRawEvent(%q): %d keys, reference %d", data, len(got.fields), len(ref.fields))
	}
	for i, f := range ref.fields {
		if v := got.Get(f.key); !bytes.Equal(v, f.value) {
			t.Fatalf("ParseRawEvent(%q): Get(%q) = %s, reference %s", data, f.key, v, f.value)
		}
		if got.fields[i].value != string(f.value) {
			t.Fatalf("ParseRawEvent(%q): key %d is %s, reference %s", data, i, got.fields[i].value, f.value)
		}
	}
	sameOutput := func(what string) {
		t.Helper()
		for _, enc := range []struct {
			name string
			new  func() ([]byte, error)
			ref  func() ([]byte, error)
		}{
			{"MarshalJSON", got.MarshalJSON, ref.MarshalJSON},
			{"MarshalEvent", func() ([]byte, error) { return MarshalEvent(got) }, func() ([]byte, error) { return marshalEventReflect(ref) }},
			{"json.Marshal", func() ([]byte, error) { return json.Marshal(got) }, func() ([]byte, error) { return json.Marshal(ref) }},
		} {
			out, err := enc.new()
			refOut, rerr := enc.ref()
			// The errors name the types: the reference's is refRawEvent.
			if !bytes.Equal(out, refOut) || (err == nil) != (rerr == nil) ||
				err != nil && err.Error() != strings.ReplaceAll(rerr.Error(), "refRawEvent", "RawEvent") {
				t.Fatalf("%s of %q (%s):\n got %s (%v)\nwant %s (%v)", enc.name, data, what, out, err, refOut, rerr)
			}
		}
	}
	sameOutput("as parsed")
	// As the Auth service and a FileLog change it.
	for _, e := range []*Metadata{&got.Metadata, &ref.Metadata} {
		e.ClusterName, e.Code = "test<&>\u2028", "D1002I"
		e.Time = e.Time.UTC()
	}
	got.ForwardedBy, ref.ForwardedBy = "agent-1", "agent-1"
	sameOutput("stamped")
}

var rawEventSeeds = []string{
	`{"event":"db.session.query","uid":"u","time":"2026-11-23T20:30:00Z","query":"select 1","n":[1,{"a":null}]}`,
	`{"event":"x","code":"C1","cluster_name":"c","forwarded_by":"h","b":true}`,
	`{"event":"x","x":"\u00e9\n"}`,
	`{"event":"a","event":"b"}`,
	`{ "event" : "x" , "y" : { } }`,
	"\t{\"event\":\"x\",\"y\":[ 1 , \"a b\" ,\n{\"k\" : -1.5e+3}]}\r\n",
	`{"\u0065vent":"x","ev\u0065nt":"y"}`,
	`{"event":"x","k\u00e9y":1,"k` + "\xff" + `":2,"k` + "\xfe" + `":3}`,
	`{"event":"x","a<b>&":1,"\u2028":2,"q\"\\":3}`,
	`{"event":"x<y","code":null,"uid":"\ud800","time":"2026-11-23T21:30:00.5+01:00"}`,
	`{"event":"x","time":null}`,
	`{"event":"x","time":"2026-11-23T20:30:00+24:00"}`,
	`{"event":"x","v":"` + "\xff\xfe" + `","w":"\/\b\f\n\r\t\u001f"}`,
	`{"event":"x","n":0,"m":-0.0e-0,"o":1E9,"p":01}`,
	`{"event":"x","n":1.}`,
	`{"event":"x","n":-}`,
	`{"event":"x","t":tru}`,
	`{"event":"x","t":true}x`,
	`{"event":"x"}{"event":"y"}`,
	`{"event":"x","a":[1,2}`,
	`{"event":"x","a":{"b":[}]}`,
	`{"event":"x","a":"unterminated`,
	`{"event":"x","a":"bad \q escape"}`,
	`{"event":"x",`,
	`{"event":"x" "y":1}`,
	`{"event":5,"x":[}`,
	`{"a":1,"a"x`,
	`{"event":"x",1:2}`,
	`{`,
	`}`,
	` `,
	`null`,
}

func TestParseRawEventMatchesReference(t *testing.T) {
	for _, seed := range rawEventSeeds {
		compareWithReference(t, []byte(seed))
	}
	// Many keys (the parser switches to a map to find duplicates).
	var b strings.Builder
	b.WriteString(`{"event":"x"`)
	for i := range 100 {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	compareWithReference(t, []byte(b.String()+`}`))
	compareWithReference(t, []byte(b.String()+`,"k7":0}`))
	compareWithReference(t, []byte(b.String()+`,"k99":0}`))
	// Deep nesting, to encoding/json's limit and past it.
	for _, depth := range []int{9999, 10000, 10001} {
		v := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		compareWithReference(t, []byte(`{"event":"x","v":`+v+`}`))
	}
}

// FuzzParseRawEventMatchesReference compares ParseRawEvent with the
// Decoder-based parser it replaced.
func FuzzParseRawEventMatchesReference(f *testing.F) {
	for _, seed := range rawEventSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareWithReference(t, data)
	})
}

func TestParseRawEventKeepsNoReference(t *testing.T) {
	data := []byte(`{"event":"x","uid":"u","a":"value","b":[ 1 ]}`)
	e, err := ParseRawEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := MarshalEvent(e)
	for i := range data {
		data[i] = 'z'
	}
	if after, _ := MarshalEvent(e); !bytes.Equal(before, after) || e.ID != "u" {
		t.Errorf("the event changed with the input: %s, then %s", before, after)
	}
	// Nor does Get hand out the event's own bytes.
	v := e.Get("a")
	v[1] = 'X'
	if got := string(e.Get("a")); got != `"value"` {
		t.Errorf("Get after changing what it returned: %s", got)
	}
}

func TestParseRawEventErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, "audit: an event must be a JSON object"},
		{`{"event":"a","code":1}`, `audit: event key "code" must be a string`},
		{`{"event":"a","ev\u0065nt":"b"}`, `audit: event has the key "event" twice`},
		{`{"event":"a","time":"noon"}`, `audit: event time "noon" is not RFC 3339`},
		{`{"event":"a"} x`, "audit: data after the event's JSON object"},
		{`{"event":"a",}`, "audit: event is not valid JSON: invalid character '}' looking for beginning of object key string"},
		{`{"code":"a"}`, `audit: event has no "event" type`},
	} {
		if _, err := ParseRawEvent([]byte(tc.in)); err == nil || err.Error() != tc.want {
			t.Errorf("ParseRawEvent(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// A RawEvent through a FileLog is written as MarshalJSON writes it.
func TestFileLogWritesRawEventAsMarshalJSON(t *testing.T) {
	e, err := ParseRawEvent([]byte(`{"event":"x<y","uid":"u","time":"2026-11-23T20:30:00Z","q":"a<b","n":[1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log, err := NewFileLog(FileLogConfig{Dir: dir, Durability: SyncEachEvent})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := log.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if err != nil || len(files) != 1 {
		t.Fatalf("audit files %v, %v", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'})
	if len(lines) != 1 || !bytes.Equal(lines[0], want) {
		t.Errorf("file holds %q, want %s", lines, want)
	}
}
