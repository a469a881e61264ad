package postgres

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/audit"
)

func testDecoder() *decoder {
	return newDecoder(&Relay{
		ClusterName: "test",
		Session:     audit.DatabaseSessionMetadata{SessionMetadata: audit.SessionMetadata{SessionID: "s1"}},
		Clock:       func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
}

// decodeAll decodes each message (as a client would encode it) and returns
// the events' transcript.
func decodeAll(t *testing.T, d *decoder, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	var events []audit.Event
	for _, m := range msgs {
		frame := encode(t, m)
		e, err := d.decode(frame[0], frame[5:])
		if err != nil {
			t.Fatalf("decode %T: %v", m, err)
		}
		events = append(events, e)
	}
	return transcript(events)
}

func TestDecoderTracksStatementsAndPortals(t *testing.T) {
	d := testDecoder()
	got := decodeAll(t, d,
		&pgproto3.Parse{Name: "s1", Query: "select $1, $2, $3, $4"},
		&pgproto3.Parse{Name: "", Query: "select 'unnamed'"},
		&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "p1",
			ParameterFormatCodes: []int16{0, 1, 0, 0},
			Parameters:           [][]byte{[]byte("ünï"), {0x00, 0xff}, nil, {0xc3, 0x28}}},
		&pgproto3.Bind{PreparedStatement: "", DestinationPortal: "",
			ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{1}, {2}}},
		// Re-preparing the unnamed statement does not change what the
		// unnamed portal runs.
		&pgproto3.Parse{Name: "", Query: "select 'again'"},
		&pgproto3.Execute{Portal: "p1", MaxRows: 10},
		&pgproto3.Execute{Portal: ""},
		&pgproto3.Execute{Portal: "never bound"},
		&pgproto3.Close{ObjectType: 'S', Name: "s1"},
		&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "p2"},
		&pgproto3.Close{ObjectType: 'P', Name: "p1"},
		&pgproto3.Execute{Portal: "p1"},
		&pgproto3.FunctionCall{Function: 1598, ArgFormatCodes: []uint16{0, 1}, Arguments: [][]byte{[]byte("16384"), nil}, ResultFormatCode: 1},
		&pgproto3.Query{String: "select 1; select 2"},
	)
	want := []string{
		`parse "s1" select $1, $2, $3, $4`,
		`parse "" select 'unnamed'`,
		`bind "s1"->"p1" ["ünï" "\\x00ff" NULL "\\xc328"] select $1, $2, $3, $4`,
		`bind ""->"" ["\\x01" "\\x02"] select 'unnamed'`,
		`parse "" select 'again'`,
		`execute "p1" max=10 "s1" select $1, $2, $3, $4`,
		`execute "" max=0 "" select 'unnamed'`,
		`execute "never bound" max=0 "" `,
		`close statement "s1"""`,
		`bind "s1"->"p2" [] `,
		`close portal """p1"`,
		`execute "p1" max=0 "" `,
		`function 1598 ["16384" NULL]`,
		`query select 1; select 2`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestDecoderEventFields(t *testing.T) {
	d := testDecoder()
	frame := encode(t, &pgproto3.Query{String: "select 1"})
	e, err := d.decode('Q', frame[5:])
	if err != nil {
		t.Fatal(err)
	}
	q := e.(*audit.DatabaseSessionQuery)
	if q.Type != audit.TypeDatabaseSessionQuery || q.ClusterName != "test" || q.SessionID != "s1" ||
		!q.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || !q.Success || q.Query != "select 1" {
		t.Errorf("event %+v", q)
	}
	// The event does not alias the message buffer.
	for i := range frame {
		frame[i] = 'z'
	}
	if q.Query != "select 1" {
		t.Errorf("event changed with the buffer: %q", q.Query)
	}
}

func TestDecoderLimits(t *testing.T) {
	d := newDecoder(&Relay{QueryLimit: 10, ParamLimit: 8})
	long := "select 'ééééééé'" // é is 2 bytes: the cut must not split one
	got := decodeAll(t, d,
		&pgproto3.Query{String: long},
		&pgproto3.Parse{Name: "s", Query: long},
		&pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: []int16{0, 1},
			Parameters: [][]byte{[]byte("abcdefghijkl"), {1, 2, 3, 4, 5, 6}}},
	)
	cut := "select 'é...(truncated, 23 bytes)"
	want := []string{
		"query " + cut,
		`parse "s" ` + cut,
		`bind "s"->"" ["abcdefgh...(truncated, 12 bytes)" "\\x010203...(truncated, 6 bytes)"] ` + cut,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestDecoderMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  byte
		body []byte
	}{
		{"query without terminator", 'Q', []byte("select 1")},
		{"query with inner NUL", 'Q', []byte("select 1\x00; drop table x\x00")},
		{"empty query message", 'Q', nil},
		{"parse without query", 'P', []byte("s\x00")},
		{"bind without names", 'B', []byte("p")},
		{"bind with 65535 format codes", 'B', []byte("\x00\x00\xff\xff")},
		{"bind with 65535 parameters", 'B', []byte("\x00\x00\x00\x00\xff\xff")},
		{"bind parameter overrun", 'B', []byte("\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10ab\x00\x00")},
		{"bind negative length", 'B', []byte("\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00")},
		{"bind result codes mismatch", 'B', []byte("\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00")},
		{"execute without max rows", 'E', []byte("p\x00\x00")},
		{"execute with trailing bytes", 'E', []byte("p\x00\x00\x00\x00\x00\x00")},
		{"close of unknown object", 'C', []byte("Xname\x00")},
		{"close without terminator", 'C', []byte("Sname")},
		{"function call too short", 'F', []byte{0, 0}},
		{"function call with 65535 arguments", 'F', []byte("\x00\x00\x00\x01\x00\x00\xff\xff\x00\x00")},
		{"function call bad format", 'F', []byte("\x00\x00\x00\x01\x00\x01\x00\x07\x00\x00\x00\x00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDecoder()
			if e, err := d.decode(tc.typ, tc.body); !errors.Is(err, errMalformed) {
				t.Errorf("got %#v, %v; want a malformed-message error", e, err)
			}
		})
	}
}

func TestRenderValues(t *testing.T) {
	sp := func(s string) *string { return &s }
	got := renderValues([][]byte{[]byte("a"), nil, {0xff}}, []int16{}, 100)
	want := []*string{sp("a"), nil, sp(`\xff`)}
	if len(got) != len(want) || *got[0] != *want[0] || got[1] != nil || *got[2] != *want[2] {
		t.Errorf("text format by default: %v", renderParams(got))
	}
	if got := renderValues[int16](nil, nil, 100); got == nil || len(got) != 0 {
		t.Errorf("no values: %#v, want an empty non-nil slice (JSON [])", got)
	}
	for _, tc := range []struct {
		v     []byte
		text  bool
		limit int
		want  string
	}{
		{[]byte("hello"), true, 5, "hello"},
		{[]byte("hello!"), true, 5, "hello...(truncated, 6 bytes)"},
		{[]byte("日本語"), true, 4, "日...(truncated, 9 bytes)"},
		{[]byte("日本語"), true, 2, "...(truncated, 9 bytes)"},
		{[]byte{0xde, 0xad, 0xbe, 0xef}, false, 10, `\xdeadbeef`},
		{[]byte{0xde, 0xad, 0xbe, 0xef}, false, 9, `\xdeadbe...(truncated, 4 bytes)`},
		{[]byte{0xde, 0xad}, false, 1, `\x...(truncated, 2 bytes)`},
		{[]byte{}, false, 10, `\x`},
		{[]byte{}, true, 10, ``},
	} {
		if got := renderValue(tc.v, tc.text, tc.limit); got != tc.want {
			t.Errorf("renderValue(%q, text=%v, %d) = %q, want %q", tc.v, tc.text, tc.limit, got, tc.want)
		}
	}
}

func TestTrackerBounds(t *testing.T) {
	tr := tracker{maxBytes: 10 * (trackOverhead + 2), maxEntries: 5}
	for i := range 20 {
		tr.put(string(rune('a'+i)), tracked{query: "q"})
		if len(tr.m) > 5 {
			t.Fatalf("%d entries, limit 5", len(tr.m))
		}
	}
	if got := tr.get("t"); got.query != "q" {
		t.Error("the newest entry was evicted")
	}
	tr = tracker{maxBytes: 3 * (trackOverhead + 11), maxEntries: 100}
	for i := range 20 {
		tr.put(string(rune('a'+i)), tracked{query: "0123456789"})
		if tr.bytes > tr.maxBytes {
			t.Fatalf("%d bytes, limit %d", tr.bytes, tr.maxBytes)
		}
	}
	tr.put("huge", tracked{query: strings.Repeat("x", 1000)})
	if _, ok := tr.m["huge"]; ok {
		t.Error("an entry larger than the whole budget was kept")
	}
	total := 0
	for k, v := range tr.m {
		total += cost(k, v)
	}
	if total != tr.bytes {
		t.Errorf("accounted %d bytes, holds %d", tr.bytes, total)
	}
	tr.remove("t")
	tr.remove("nothing")
}
