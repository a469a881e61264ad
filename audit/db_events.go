package audit

import "time"

// Database-session event types. Like the cluster types, the names are part
// of the stable schema.
const (
	TypeDatabaseSessionStart = "db.session.start" // DatabaseSessionStart
	TypeDatabaseSessionEnd   = "db.session.end"   // DatabaseSessionEnd
	TypeDatabaseSessionQuery = "db.session.query" // DatabaseSessionQuery

	TypePostgresParse    = "db.session.postgres.parse"    // PostgresParse
	TypePostgresBind     = "db.session.postgres.bind"     // PostgresBind
	TypePostgresExecute  = "db.session.postgres.execute"  // PostgresExecute
	TypePostgresClose    = "db.session.postgres.close"    // PostgresClose
	TypePostgresFunction = "db.session.postgres.function" // PostgresFunctionCall
)

// Database-session event codes (family D). D1xxx are protocol-independent
// session events, D2xxx PostgreSQL protocol steps, D3xxx MySQL ones
// (db_mysql_events.go).
const (
	CodeDatabaseSessionStart        = "D1000I"
	CodeDatabaseSessionStartFailure = "D1000W" // refused: denied by policy, database down, ...
	CodeDatabaseSessionEnd          = "D1001I"
	CodeDatabaseSessionQuery        = "D1002I"
	CodeDatabaseSessionQueryFailure = "D1002W" // refused by the agent, never sent to the database
	CodePostgresParse               = "D2000I"
	CodePostgresBind                = "D2001I"
	CodePostgresExecute             = "D2002I"
	CodePostgresClose               = "D2003I"
	CodePostgresFunction            = "D2004I"
)

// dbDefaultCode is [defaultCode] for the database-session types.
func dbDefaultCode(typ string, failed bool) string {
	switch typ {
	case TypeDatabaseSessionStart:
		if failed {
			return CodeDatabaseSessionStartFailure
		}
		return CodeDatabaseSessionStart
	case TypeDatabaseSessionEnd:
		return CodeDatabaseSessionEnd
	case TypeDatabaseSessionQuery:
		if failed {
			return CodeDatabaseSessionQueryFailure
		}
		return CodeDatabaseSessionQuery
	case TypePostgresParse:
		return CodePostgresParse
	case TypePostgresBind:
		return CodePostgresBind
	case TypePostgresExecute:
		return CodePostgresExecute
	case TypePostgresClose:
		return CodePostgresClose
	case TypePostgresFunction:
		return CodePostgresFunction
	}
	return mysqlDefaultCode(typ)
}

// newDBEvent returns an empty event struct for a database-session type, or
// nil for any other type; [UnmarshalEvent] decodes into it.
func newDBEvent(typ string) Event {
	switch typ {
	case TypeDatabaseSessionStart:
		return &DatabaseSessionStart{}
	case TypeDatabaseSessionEnd:
		return &DatabaseSessionEnd{}
	case TypeDatabaseSessionQuery:
		return &DatabaseSessionQuery{}
	case TypePostgresParse:
		return &PostgresParse{}
	case TypePostgresBind:
		return &PostgresBind{}
	case TypePostgresExecute:
		return &PostgresExecute{}
	case TypePostgresClose:
		return &PostgresClose{}
	case TypePostgresFunction:
		return &PostgresFunctionCall{}
	}
	return newMySQLEvent(typ)
}

// SessionMetadata identifies one database session: every event of a
// session carries the same ID, from db.session.start to db.session.end.
type SessionMetadata struct {
	// SessionID is a random UUID the agent picks when the session starts.
	SessionID string `json:"sid"`
}

// DatabaseSessionMetadata is what every database-session event carries
// besides [Metadata]: the session ID, who (user and roles), the route
// (database service, protocol, database user, database name) and the
// client's address. A protocol engine fills it once per session and copies
// it into each event. In JSON its fields are flattened like those of the
// other blocks: "sid", "user", "roles", "db_service", "db_protocol",
// "db_user", "db_name", "client_addr".
type DatabaseSessionMetadata struct {
	SessionMetadata
	UserMetadata
	DatabaseMetadata
	ConnectionMetadata
}

// DatabaseSessionStart records a database session being opened
// ([TypeDatabaseSessionStart]), or refused: then Success is false and Error
// says why (denied by a role, a lock, an expired certificate, the database
// refusing or being down), in the words the client was shown.
type DatabaseSessionStart struct {
	Metadata
	DatabaseSessionMetadata
	Status
}

// DatabaseSessionEnd records the end of a session that started
// ([TypeDatabaseSessionEnd]).
type DatabaseSessionEnd struct {
	Metadata
	DatabaseSessionMetadata
	// SessionStart is when the session started.
	SessionStart time.Time `json:"session_start,omitzero"`
	// Duration is how long the session lasted, in nanoseconds.
	Duration time.Duration `json:"duration"`
	// BytesIn counts the bytes the client sent towards the database.
	BytesIn int64 `json:"bytes_in"`
	// BytesOut counts the bytes sent back to the client.
	BytesOut int64 `json:"bytes_out"`
	// Reason says why the session ended when it did not end by the
	// client's or the database's choice, e.g. "certificate expired" or
	// "message too large"; empty for a normal end.
	Reason string `json:"reason,omitempty"`
}

// DatabaseSessionQuery records a statement sent with the simple query
// protocol ([TypeDatabaseSessionQuery]); a query string may hold several
// statements separated by semicolons. Success reports that the statement
// was passed on to the database, not that the database ran it without
// error; Success false means the agent refused it (Error says why) and the
// database never saw it.
type DatabaseSessionQuery struct {
	Metadata
	DatabaseSessionMetadata
	// Query is the SQL text, truncated past the engine's limit with a
	// marker (see the engine's documentation).
	Query string `json:"query"`
	Status
}

// PostgresParse records a PostgreSQL Parse message: a statement being
// prepared ([TypePostgresParse]). The unnamed statement has an empty name.
type PostgresParse struct {
	Metadata
	DatabaseSessionMetadata
	StatementName string `json:"statement_name"`
	Query         string `json:"query"`
}

// PostgresBind records a PostgreSQL Bind message: a prepared statement
// bound to parameters, making a portal ([TypePostgresBind]).
type PostgresBind struct {
	Metadata
	DatabaseSessionMetadata
	StatementName string `json:"statement_name"`
	PortalName    string `json:"portal_name"`
	// Query is the statement's SQL when the engine saw it prepared.
	Query string `json:"query,omitempty"`
	// Parameters are the bound values in order, decoded by their format
	// code: text values as UTF-8 (as hexadecimal, "\\x...", when not valid
	// UTF-8), binary values as "\\x" followed by hexadecimal; null for SQL
	// NULL. Values past the engine's limit are cut and end with a marker.
	Parameters []*string `json:"parameters"`
}

// PostgresExecute records a PostgreSQL Execute message: a portal run
// ([TypePostgresExecute]).
type PostgresExecute struct {
	Metadata
	DatabaseSessionMetadata
	PortalName string `json:"portal_name"`
	// MaxRows is the row limit the client asked for; 0 means all rows.
	MaxRows uint32 `json:"max_rows"`
	// StatementName and Query name what the portal runs, when the engine
	// saw it bound and prepared.
	StatementName string `json:"statement_name,omitempty"`
	Query         string `json:"query,omitempty"`
}

// Objects a [PostgresClose] closes.
const (
	CloseStatement = "statement"
	ClosePortal    = "portal"
)

// PostgresClose records a PostgreSQL Close message: a prepared statement or
// portal being closed ([TypePostgresClose]).
type PostgresClose struct {
	Metadata
	DatabaseSessionMetadata
	// Object is CloseStatement or ClosePortal; the name is in the matching
	// field below ("" is the unnamed statement or portal).
	Object        string `json:"object"`
	StatementName string `json:"statement_name,omitempty"`
	PortalName    string `json:"portal_name,omitempty"`
}

// PostgresFunctionCall records a PostgreSQL FunctionCall message: a
// function called by its object ID through the fast-path interface
// ([TypePostgresFunction]).
type PostgresFunctionCall struct {
	Metadata
	DatabaseSessionMetadata
	FunctionOID uint32 `json:"function_oid"`
	// FunctionArgs are the arguments, decoded like [PostgresBind.Parameters].
	FunctionArgs []*string `json:"function_args"`
}
