package audit

import (
	"strings"
	"testing"
	"time"
)

func goldenDBSession() DatabaseSessionMetadata {
	return DatabaseSessionMetadata{
		SessionMetadata:    SessionMetadata{SessionID: "9b1d7c3e-5a4f-4e21-8c6d-2f0e1a3b4c5d"},
		UserMetadata:       UserMetadata{User: "alice", Roles: []string{"access"}},
		DatabaseMetadata:   DatabaseMetadata{DatabaseService: "pg1", DatabaseProtocol: "postgres", DatabaseUser: "alice", DatabaseName: "app"},
		ConnectionMetadata: ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
	}
}

func strp(s string) *string { return &s }

// dbGoldenEvents are the database-session events of goldenEvents.
func dbGoldenEvents() []struct {
	name  string
	event Event
} {
	return []struct {
		name  string
		event Event
	}{
		{"db_session_start", &DatabaseSessionStart{
			Metadata:                goldenMeta(TypeDatabaseSessionStart, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e20"),
			DatabaseSessionMetadata: goldenDBSession(),
			Status:                  Status{Success: true},
		}},
		{"db_session_start_denied", &DatabaseSessionStart{
			Metadata:                goldenMeta(TypeDatabaseSessionStart, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e21"),
			DatabaseSessionMetadata: goldenDBSession(),
			Status:                  Status{Error: `role "access" does not allow database user "postgres" on pg1`},
		}},
		{"db_session_end", &DatabaseSessionEnd{
			Metadata:                goldenMeta(TypeDatabaseSessionEnd, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e22"),
			DatabaseSessionMetadata: goldenDBSession(),
			SessionStart:            goldenTime.Add(-90 * time.Second),
			Duration:                90 * time.Second,
			BytesIn:                 1234,
			BytesOut:                567890,
		}},
		{"db_session_query", &DatabaseSessionQuery{
			Metadata:                goldenMeta(TypeDatabaseSessionQuery, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e23"),
			DatabaseSessionMetadata: goldenDBSession(),
			Query:                   "select * from accounts where balance > 100 and owner <> 'bob'",
			Status:                  Status{Success: true},
		}},
		{"db_session_query_refused", &DatabaseSessionQuery{
			Metadata:                goldenMeta(TypeDatabaseSessionQuery, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e24"),
			DatabaseSessionMetadata: goldenDBSession(),
			Query:                   "insert into blobs values ('...(truncated, 104857600 bytes)",
			Status:                  Status{Error: "client message of 104857605 bytes exceeds the limit of 67108864 bytes"},
		}},
		{"db_session_postgres_parse", &PostgresParse{
			Metadata:                goldenMeta(TypePostgresParse, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e25"),
			DatabaseSessionMetadata: goldenDBSession(),
			StatementName:           "stmtcache_1",
			Query:                   "select name from users where id = $1 and active = $2",
		}},
		{"db_session_postgres_bind", &PostgresBind{
			Metadata:                goldenMeta(TypePostgresBind, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e26"),
			DatabaseSessionMetadata: goldenDBSession(),
			StatementName:           "stmtcache_1",
			PortalName:              "",
			Query:                   "select name from users where id = $1 and active = $2",
			Parameters:              []*string{strp("42"), strp(`\x01`), nil},
		}},
		{"db_session_postgres_execute", &PostgresExecute{
			Metadata:                goldenMeta(TypePostgresExecute, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e27"),
			DatabaseSessionMetadata: goldenDBSession(),
			PortalName:              "",
			MaxRows:                 0,
			StatementName:           "stmtcache_1",
			Query:                   "select name from users where id = $1 and active = $2",
		}},
		{"db_session_postgres_close", &PostgresClose{
			Metadata:                goldenMeta(TypePostgresClose, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e28"),
			DatabaseSessionMetadata: goldenDBSession(),
			Object:                  CloseStatement,
			StatementName:           "stmtcache_1",
		}},
		{"db_session_postgres_function", &PostgresFunctionCall{
			Metadata:                goldenMeta(TypePostgresFunction, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e29"),
			DatabaseSessionMetadata: goldenDBSession(),
			FunctionOID:             1598,
			FunctionArgs:            []*string{strp("16384"), nil},
		}},
	}
}

// dbEventStructs lists every database-session event struct, for
// TestGoldenCoversEveryStruct.
func dbEventStructs() []Event {
	return []Event{
		&DatabaseSessionStart{}, &DatabaseSessionEnd{}, &DatabaseSessionQuery{},
		&PostgresParse{}, &PostgresBind{}, &PostgresExecute{}, &PostgresClose{}, &PostgresFunctionCall{},
	}
}

func TestDBCodes(t *testing.T) {
	types := []string{
		TypeDatabaseSessionStart, TypeDatabaseSessionEnd, TypeDatabaseSessionQuery,
		TypePostgresParse, TypePostgresBind, TypePostgresExecute, TypePostgresClose, TypePostgresFunction,
	}
	seen := map[string]string{}
	for _, typ := range types {
		if !strings.HasPrefix(typ, "db.session.") {
			t.Errorf("%s is not under db.session.", typ)
		}
		for _, failed := range []bool{false, true} {
			code := defaultCode(typ, failed)
			if len(code) != 6 || code[0] != 'D' || !strings.ContainsAny(code[5:], "IW") {
				t.Errorf("defaultCode(%q, %v) = %q; want D, four digits, I or W", typ, failed, code)
			}
			if prev, ok := seen[code]; ok && prev != typ {
				t.Errorf("code %s used by both %s and %s", code, prev, typ)
			}
			seen[code] = typ
		}
		e, err := UnmarshalEvent([]byte(`{"event":"` + typ + `"}`))
		if err != nil {
			t.Errorf("UnmarshalEvent(%s): %v", typ, err)
			continue
		}
		if newDBEvent(typ) == nil || e.GetMetadata().Type != typ {
			t.Errorf("UnmarshalEvent(%s) = %#v", typ, e)
		}
	}
	for _, typ := range []string{TypeDatabaseSessionStart, TypeDatabaseSessionQuery} {
		if defaultCode(typ, true) == defaultCode(typ, false) {
			t.Errorf("%s: failure has the same code as success", typ)
		}
	}
}

// The database-session blocks flatten into the event's top level, so
// searches filter sessions by user and session ID like any other event.
func TestDBSessionMetadataFlattens(t *testing.T) {
	e := &DatabaseSessionQuery{
		Metadata:                goldenMeta(TypeDatabaseSessionQuery, "id"),
		DatabaseSessionMetadata: goldenDBSession(),
		Query:                   "select 1",
		Status:                  Status{Success: true},
	}
	f, err := ToFields(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"sid", "user", "roles", "db_service", "db_protocol", "db_user", "db_name", "client_addr", "query", "success"} {
		if _, ok := f[key]; !ok {
			t.Errorf("key %q missing from %v", key, f)
		}
	}
	if f.User() != "alice" {
		t.Errorf("user = %q", f.User())
	}
}
