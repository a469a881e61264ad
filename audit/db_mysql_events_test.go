package audit

import (
	"strings"
	"testing"
)

func goldenMySQLSession() DatabaseSessionMetadata {
	s := goldenDBSession()
	s.DatabaseService, s.DatabaseProtocol = "my1", "mysql"
	return s
}

// mysqlGoldenEvents are the MySQL events of goldenEvents.
func mysqlGoldenEvents() []struct {
	name  string
	event Event
} {
	const query = "select name from users where id = ? and active = ?"
	return []struct {
		name  string
		event Event
	}{
		{"db_session_mysql_statements_prepare", &MySQLStatementPrepare{
			Metadata:                goldenMeta(TypeMySQLStatementPrepare, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e40"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			Query:                   query,
		}},
		{"db_session_mysql_statements_execute", &MySQLStatementExecute{
			Metadata:                goldenMeta(TypeMySQLStatementExecute, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e41"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			StatementID:             7,
			Query:                   query,
			Parameters:              []*string{strp("42"), strp("2026-11-23 20:30:00"), nil, strp(`\xdeadbeef`), strp("(long data, 1048576 bytes)")},
		}},
		{"db_session_mysql_statements_send_long_data", &MySQLStatementSendLongData{
			Metadata:                goldenMeta(TypeMySQLStatementSendLongData, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e42"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			StatementID:             7,
			ParameterID:             4,
			DataSize:                1048576,
			Query:                   query,
		}},
		{"db_session_mysql_statements_close", &MySQLStatementClose{
			Metadata:                goldenMeta(TypeMySQLStatementClose, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e43"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			StatementID:             7,
			Query:                   query,
		}},
		{"db_session_mysql_statements_reset", &MySQLStatementReset{
			Metadata:                goldenMeta(TypeMySQLStatementReset, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e44"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			StatementID:             7,
			Query:                   query,
		}},
		{"db_session_mysql_statements_fetch", &MySQLStatementFetch{
			Metadata:                goldenMeta(TypeMySQLStatementFetch, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e45"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			StatementID:             7,
			RowsCount:               100,
			Query:                   query,
		}},
		{"db_session_mysql_init_db", &MySQLInitDB{
			Metadata:                goldenMeta(TypeMySQLInitDB, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e46"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			SchemaName:              "app",
		}},
		{"db_session_mysql_create_db", &MySQLCreateDB{
			Metadata:                goldenMeta(TypeMySQLCreateDB, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e47"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			SchemaName:              "reports",
		}},
		{"db_session_mysql_drop_db", &MySQLDropDB{
			Metadata:                goldenMeta(TypeMySQLDropDB, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e48"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			SchemaName:              "reports",
		}},
		{"db_session_mysql_process_kill", &MySQLProcessKill{
			Metadata:                goldenMeta(TypeMySQLProcessKill, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e49"),
			DatabaseSessionMetadata: goldenMySQLSession(),
			ProcessID:               2000000017,
			ServerProcessID:         31,
		}},
	}
}

// mysqlEventStructs lists every MySQL event struct, for
// TestGoldenCoversEveryStruct.
func mysqlEventStructs() []Event {
	return []Event{
		&MySQLStatementPrepare{}, &MySQLStatementExecute{}, &MySQLStatementSendLongData{},
		&MySQLStatementClose{}, &MySQLStatementReset{}, &MySQLStatementFetch{},
		&MySQLInitDB{}, &MySQLCreateDB{}, &MySQLDropDB{}, &MySQLProcessKill{},
	}
}

func TestMySQLCodes(t *testing.T) {
	types := []string{
		TypeMySQLStatementPrepare, TypeMySQLStatementExecute, TypeMySQLStatementSendLongData,
		TypeMySQLStatementClose, TypeMySQLStatementReset, TypeMySQLStatementFetch,
		TypeMySQLInitDB, TypeMySQLCreateDB, TypeMySQLDropDB, TypeMySQLProcessKill,
	}
	seen := map[string]string{}
	for _, typ := range types {
		if !strings.HasPrefix(typ, "db.session.mysql.") {
			t.Errorf("%s is not under db.session.mysql.", typ)
		}
		code := defaultCode(typ, false)
		if len(code) != 6 || !strings.HasPrefix(code, "D3") || code[5] != 'I' {
			t.Errorf("defaultCode(%q) = %q; want D3, three digits, I", typ, code)
		}
		if prev, ok := seen[code]; ok {
			t.Errorf("code %s used by both %s and %s", code, prev, typ)
		}
		seen[code] = typ
		e, err := UnmarshalEvent([]byte(`{"event":"` + typ + `"}`))
		if err != nil {
			t.Errorf("UnmarshalEvent(%s): %v", typ, err)
			continue
		}
		if e.GetMetadata().Type != typ {
			t.Errorf("UnmarshalEvent(%s) = %#v", typ, e)
		}
	}
	// No MySQL code collides with the other database-session codes.
	for _, typ := range []string{TypeDatabaseSessionStart, TypeDatabaseSessionEnd, TypeDatabaseSessionQuery,
		TypePostgresParse, TypePostgresBind, TypePostgresExecute, TypePostgresClose, TypePostgresFunction} {
		for _, failed := range []bool{false, true} {
			if prev, ok := seen[defaultCode(typ, failed)]; ok {
				t.Errorf("%s shares code %s with %s", typ, defaultCode(typ, failed), prev)
			}
		}
	}
}
