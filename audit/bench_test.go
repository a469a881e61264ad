package audit

import (
	"context"
	"strings"
	"testing"
)

// Benchmarks of the audit path of a proxied statement: the agent encodes
// each statement's event (MarshalEvent) for its Forwarder, and the Auth
// service parses what agents forward (ParseRawEvent) and writes it to its
// FileLog (RawEvent marshalling). Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./audit > new.txt

// benchDBEvents are the golden database-session events, stamped, by name.
func benchDBEvents(b *testing.B) []struct {
	name  string
	event Event
} {
	b.Helper()
	var out []struct {
		name  string
		event Event
	}
	for _, tc := range goldenEvents() {
		if !strings.HasPrefix(tc.name, "db_session") {
			continue
		}
		if err := stamp(tc.event, nil, nil); err != nil {
			b.Fatal(err)
		}
		out = append(out, tc)
	}
	return out
}

// BenchmarkMarshalEvent encodes each database-session event type.
func BenchmarkMarshalEvent(b *testing.B) {
	for _, tc := range benchDBEvents(b) {
		b.Run(strings.TrimPrefix(tc.name, "db_session_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MarshalEvent(tc.event); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// forwarded is the JSON of an event as a Forwarder delivers it.
type forwarded struct {
	name string
	data []byte
}

// benchForwarded returns what an agent forwards for a statement: the JSON
// of a db.session.query and of a db.session.postgres.bind event, and an
// indented one.
func benchForwarded(b *testing.B) []forwarded {
	b.Helper()
	var out []forwarded
	for _, tc := range benchDBEvents(b) {
		switch tc.name {
		case "db_session_query", "db_session_postgres_bind":
			line, err := MarshalEvent(tc.event)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, forwarded{strings.TrimPrefix(tc.name, "db_session_"), line})
		}
	}
	// A sender that indents its JSON (values must be compacted).
	return append(out, forwarded{"indented", []byte(`{ "event": "db.session.query", "code": "D1002I", "uid": "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e23",
  "time": "2026-11-23T20:30:00.123456789Z", "sid": "9b1d7c3e-5a4f-4e21-8c6d-2f0e1a3b4c5d", "user": "alice",
  "roles": [ "access", "editor" ], "db_service": "pg1", "db_protocol": "postgres", "db_user": "alice",
  "db_name": "app", "client_addr": "203.0.113.7:51234", "query": "select 1", "success": true }`)})
}

func BenchmarkParseRawEvent(b *testing.B) {
	for _, fw := range benchForwarded(b) {
		b.Run(fw.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(fw.data)))
			for b.Loop() {
				if _, err := ParseRawEvent(fw.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchRawEvent is a forwarded event as the Auth service writes it.
func benchRawEvent(b *testing.B, data []byte) *RawEvent {
	b.Helper()
	e, err := ParseRawEvent(data)
	if err != nil {
		b.Fatal(err)
	}
	e.ClusterName, e.ForwardedBy = "example", "7d8e9f00-1111-4222-8333-444455556666"
	return e
}

// BenchmarkRawEventMarshal encodes a forwarded event: MarshalEvent is what
// a FileLog does, MarshalJSON what encoding/json calls.
func BenchmarkRawEventMarshal(b *testing.B) {
	for _, fw := range benchForwarded(b) {
		e := benchRawEvent(b, fw.data)
		b.Run("MarshalEvent/"+fw.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MarshalEvent(e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("MarshalJSON/"+fw.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFileLogEmit writes events to a SyncBatch FileLog: a forwarded
// event (as the Auth service writes it) and a local one.
func BenchmarkFileLogEmit(b *testing.B) {
	fwd := benchForwarded(b)
	var query Event
	for _, tc := range benchDBEvents(b) {
		if tc.name == "db_session_query" {
			query = tc.event
		}
	}
	for _, tc := range []struct {
		name  string
		event Event
	}{
		{"RawEvent", benchRawEvent(b, fwd[0].data)},
		{"DatabaseSessionQuery", query},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l, err := NewFileLog(FileLogConfig{Dir: b.TempDir(), MaxSize: 64 << 20, MaxBackups: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := l.EmitAuditEvent(ctx, tc.event); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
