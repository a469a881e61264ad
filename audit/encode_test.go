package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// encodedEvents are the events MarshalEvent encodes without encoding/json.
func encodedEvents() []Event { return append(dbEventStructs(), mysqlEventStructs()...) }

// filler sets every field of an event, recursively, from its sources.
// It fails the test on a field type it does not know, so that a new kind
// of field is filled (and so compared) too.
type filler struct {
	t        testing.TB
	str      func() string
	num      func() uint64
	bool     func() bool
	time     func() time.Time
	slice    func() int // length of a slice, -1 for nil
	nilElems bool       // nil elements in []*string
}

func (f *filler) fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(f.time()))
			return
		}
		for i := range v.NumField() {
			f.fill(v.Field(i))
		}
	case reflect.String:
		v.SetString(f.str())
	case reflect.Bool:
		v.SetBool(f.bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := f.num()
		v.SetInt(int64(n) >> (64 - v.Type().Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := f.num()
		v.SetUint(n >> (64 - v.Type().Bits()))
	case reflect.Slice:
		n := f.slice()
		if n < 0 {
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			el := s.Index(i)
			if el.Kind() == reflect.Pointer {
				if f.nilElems && f.bool() {
					continue
				}
				el.Set(reflect.New(el.Type().Elem()))
				el = el.Elem()
			}
			f.fill(el)
		}
		v.Set(s)
	default:
		f.t.Fatalf("the test cannot fill a field of type %s; teach filler.fill", v.Type())
	}
}

// newFilled returns a new event of e's type with every field filled.
func (f *filler) newFilled(e Event) Event {
	v := reflect.New(reflect.TypeOf(e).Elem())
	f.fill(v.Elem())
	return v.Interface().(Event)
}

// randomFiller fills with random values chosen to trip an encoder up.
func randomFiller(t testing.TB, r *rand.Rand) *filler {
	pieces := []string{
		"", "a", "select * from t where a < b && c > 'd'", `"`, `\`, `\"`, "\x00", "\x01", "\x1f", "\x7f",
		"\b", "\f", "\n", "\r", "\t", "<", ">", "&", "\u2028", "\u2029", "é", "日本", "\U0001F600",
		"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\ufffd", "/", "</script>",
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("X", -(5*3600 + 30*60)),
		time.FixedZone("", 59), time.FixedZone("", 23*3600+59*60), time.FixedZone("", 24*3600), time.FixedZone("", -24*3600)}
	return &filler{
		t: t,
		str: func() string {
			var b strings.Builder
			for range r.IntN(6) {
				if r.IntN(8) == 0 {
					b.WriteByte(byte(r.IntN(256)))
				} else {
					b.WriteString(pieces[r.IntN(len(pieces))])
				}
			}
			return b.String()
		},
		num: func() uint64 {
			switch r.IntN(4) {
			case 0:
				return 0
			case 1:
				return math.MaxUint64 - uint64(r.IntN(3))
			}
			return r.Uint64()
		},
		bool: func() bool { return r.IntN(2) == 0 },
		time: func() time.Time {
			if r.IntN(5) == 0 {
				return time.Time{}
			}
			// Mostly years 0..9999, sometimes outside (encoding fails).
			sec := r.Int64N(400_000_000_000) - 62_200_000_000
			return time.Unix(sec, r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
		},
		slice:    func() int { return r.IntN(5) - 1 },
		nilElems: true,
	}
}

// checkAppendJSON fails t unless e's own encoder writes what encoding/json
// writes, or both fail.
func checkAppendJSON(t testing.TB, e Event) {
	t.Helper()
	want, werr := marshalEventReflect(e)
	got, ok := appendEvent([]byte("prefix"), e)
	if !ok {
		if werr == nil {
			t.Fatalf("%T has no encoder of its own, or it failed where encoding/json did not:\n%s", e, want)
		}
		return
	}
	got, found := bytes.CutPrefix(got, []byte("prefix"))
	if !found || werr != nil || !bytes.Equal(got, want) {
		t.Fatalf("%T %+v:\n got %s\nwant %s (%v)", e, e, got, want, werr)
	}
	if line, err := MarshalEvent(e); err != nil || !bytes.Equal(line, want) {
		t.Fatalf("MarshalEvent(%T) = %s, %v; want %s", e, line, err, want)
	}
}

// TestAppendJSONMatchesEncodingJSON fills each event type with random
// values, again and again, and compares its encoder with encoding/json.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	f := randomFiller(t, r)
	for _, typ := range encodedEvents() {
		t.Run(fmt.Sprintf("%T", typ), func(t *testing.T) {
			f.t = t
			for range 2000 {
				checkAppendJSON(t, f.newFilled(typ))
			}
			// The zero value, and nil.
			checkAppendJSON(t, reflect.New(reflect.TypeOf(typ).Elem()).Interface().(Event))
			nilEvent := reflect.Zero(reflect.TypeOf(typ)).Interface().(Event)
			if line, err := MarshalEvent(nilEvent); err != nil || string(line) != "null" {
				t.Errorf("MarshalEvent(nil %T) = %s, %v", typ, line, err)
			}
		})
	}
}

// TestAppendJSONWritesEveryField guards against a field added to an event
// struct and not to its encoder: filled with non-zero values, the event
// must have every key encoding/json gives it, and as many keys as the
// struct has fields.
func TestAppendJSONWritesEveryField(t *testing.T) {
	f := &filler{
		t:     t,
		str:   func() string { return "x" },
		num:   func() uint64 { return 7 << 60 },
		bool:  func() bool { return true },
		time:  func() time.Time { return goldenTime },
		slice: func() int { return 1 },
	}
	for _, typ := range encodedEvents() {
		e := f.newFilled(typ)
		want, err := marshalEventReflect(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendEvent(nil, e)
		if !ok {
			t.Errorf("%T has no encoder of its own; add an appendJSON method and list it in appendEvent", typ)
			continue
		}
		wantKeys, gotKeys := jsonKeys(t, want), jsonKeys(t, got)
		if !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("%T: its encoder writes the keys\n%q\nencoding/json writes\n%q\n(update its appendJSON in db_events_encode.go)", typ, gotKeys, wantKeys)
		}
		if n := leafFields(reflect.TypeOf(typ).Elem()); len(wantKeys) != n {
			t.Errorf("%T has %d fields but %d JSON keys: a field without a key of its own?", typ, n, len(wantKeys))
		}
	}
}

// jsonKeys returns the keys of a JSON object, in order.
func jsonKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", data)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// leafFields counts the fields of a struct, those of embedded structs
// included (a time.Time counts as one).
func leafFields(typ reflect.Type) int {
	n := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			n += leafFields(f.Type)
		} else {
			n++
		}
	}
	return n
}

// FuzzAppendJSON builds an event of each encoded type from the fuzzer's
// strings, numbers and time, and compares its encoder with encoding/json.
func FuzzAppendJSON(f *testing.F) {
	f.Add("select 1", "alice", "", "\u2028<&>\"\\\x00\xff", uint64(42), int64(1795466400), int64(123456789), int32(3600), uint8(3))
	f.Add("", "", "", "", uint64(0), int64(0), int64(0), int32(0), uint8(0))
	f.Add("é", "\t", "</script>", "\xed\xa0\x80", uint64(math.MaxUint64), int64(-62135596801), int64(0), int32(86400), uint8(255))
	f.Fuzz(func(t *testing.T, s1, s2, s3, s4 string, num uint64, sec, nsec int64, offset int32, shape uint8) {
		strs := []string{s1, s2, s3, s4}
		si, ni := 0, 0
		fl := &filler{
			t: t,
			str: func() string {
				si++
				return strs[si%len(strs)]
			},
			num: func() uint64 {
				ni++
				return num*uint64(ni) ^ uint64(ni)
			},
			bool: func() bool {
				si++
				return shape>>(si%8)&1 == 1
			},
			time: func() time.Time {
				if shape&1 == 1 {
					return time.Time{}
				}
				return time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
			},
			slice:    func() int { return int(shape%5) - 1 },
			nilElems: true,
		}
		for _, typ := range encodedEvents() {
			checkAppendJSON(t, fl.newFilled(typ))
		}
	})
}

// An embedder's event that embeds an encoded struct is encoded with its
// own fields, by encoding/json.
func TestMarshalEventOfEmbeddingStruct(t *testing.T) {
	type custom struct {
		DatabaseSessionQuery
		Extra string `json:"extra"`
	}
	e := &custom{DatabaseSessionQuery: DatabaseSessionQuery{Metadata: goldenMeta("custom.query", "id"), Query: "q"}, Extra: "kept"}
	line, err := MarshalEvent(e)
	if err != nil || !bytes.Contains(line, []byte(`"extra":"kept"`)) {
		t.Errorf("MarshalEvent = %s, %v", line, err)
	}
}
