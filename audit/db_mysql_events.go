package audit

// MySQL protocol steps of a database session. A statement sent with
// COM_QUERY is a [DatabaseSessionQuery] ([TypeDatabaseSessionQuery]), as
// for PostgreSQL; these types record the rest of what a MySQL client can
// ask for. Like the other types, the names are part of the stable schema.
const (
	TypeMySQLStatementPrepare      = "db.session.mysql.statements.prepare"        // MySQLStatementPrepare
	TypeMySQLStatementExecute      = "db.session.mysql.statements.execute"        // MySQLStatementExecute
	TypeMySQLStatementSendLongData = "db.session.mysql.statements.send_long_data" // MySQLStatementSendLongData
	TypeMySQLStatementClose        = "db.session.mysql.statements.close"          // MySQLStatementClose
	TypeMySQLStatementReset        = "db.session.mysql.statements.reset"          // MySQLStatementReset
	TypeMySQLStatementFetch        = "db.session.mysql.statements.fetch"          // MySQLStatementFetch
	TypeMySQLInitDB                = "db.session.mysql.init_db"                   // MySQLInitDB
	TypeMySQLCreateDB              = "db.session.mysql.create_db"                 // MySQLCreateDB
	TypeMySQLDropDB                = "db.session.mysql.drop_db"                   // MySQLDropDB
	TypeMySQLProcessKill           = "db.session.mysql.process_kill"              // MySQLProcessKill
)

// MySQL event codes: the D3xxx block of the database-session family.
const (
	CodeMySQLStatementPrepare      = "D3000I"
	CodeMySQLStatementExecute      = "D3001I"
	CodeMySQLStatementSendLongData = "D3002I"
	CodeMySQLStatementClose        = "D3003I"
	CodeMySQLStatementReset        = "D3004I"
	CodeMySQLStatementFetch        = "D3005I"
	CodeMySQLInitDB                = "D3006I"
	CodeMySQLCreateDB              = "D3007I"
	CodeMySQLDropDB                = "D3008I"
	CodeMySQLProcessKill           = "D3009I"
)

// mysqlDefaultCode is [defaultCode] for the MySQL types; "" for others.
func mysqlDefaultCode(typ string) string {
	switch typ {
	case TypeMySQLStatementPrepare:
		return CodeMySQLStatementPrepare
	case TypeMySQLStatementExecute:
		return CodeMySQLStatementExecute
	case TypeMySQLStatementSendLongData:
		return CodeMySQLStatementSendLongData
	case TypeMySQLStatementClose:
		return CodeMySQLStatementClose
	case TypeMySQLStatementReset:
		return CodeMySQLStatementReset
	case TypeMySQLStatementFetch:
		return CodeMySQLStatementFetch
	case TypeMySQLInitDB:
		return CodeMySQLInitDB
	case TypeMySQLCreateDB:
		return CodeMySQLCreateDB
	case TypeMySQLDropDB:
		return CodeMySQLDropDB
	case TypeMySQLProcessKill:
		return CodeMySQLProcessKill
	}
	return ""
}

// newMySQLEvent returns an empty event struct for a MySQL type, or nil.
func newMySQLEvent(typ string) Event {
	switch typ {
	case TypeMySQLStatementPrepare:
		return &MySQLStatementPrepare{}
	case TypeMySQLStatementExecute:
		return &MySQLStatementExecute{}
	case TypeMySQLStatementSendLongData:
		return &MySQLStatementSendLongData{}
	case TypeMySQLStatementClose:
		return &MySQLStatementClose{}
	case TypeMySQLStatementReset:
		return &MySQLStatementReset{}
	case TypeMySQLStatementFetch:
		return &MySQLStatementFetch{}
	case TypeMySQLInitDB:
		return &MySQLInitDB{}
	case TypeMySQLCreateDB:
		return &MySQLCreateDB{}
	case TypeMySQLDropDB:
		return &MySQLDropDB{}
	case TypeMySQLProcessKill:
		return &MySQLProcessKill{}
	}
	return nil
}

// MySQLStatementPrepare records COM_STMT_PREPARE: a statement being
// prepared ([TypeMySQLStatementPrepare]). The server assigns the statement
// ID in its answer, so the event, written before the command is passed on,
// has none; the events of later steps carry the ID and this query.
type MySQLStatementPrepare struct {
	Metadata
	DatabaseSessionMetadata
	// Query is the SQL text, truncated past the engine's limit with a
	// marker.
	Query string `json:"query"`
}

// MySQLStatementExecute records COM_STMT_EXECUTE: a prepared statement run
// with parameters ([TypeMySQLStatementExecute]).
type MySQLStatementExecute struct {
	Metadata
	DatabaseSessionMetadata
	StatementID uint32 `json:"statement_id"`
	// Query is the statement's SQL when the engine saw it prepared.
	Query string `json:"query,omitempty"`
	// Parameters are the values in order, rendered from their binary
	// protocol types: integers and floating-point numbers in decimal,
	// dates and times as "2006-01-02 15:04:05.000000", strings as UTF-8
	// (as "\\x" and hexadecimal when not valid UTF-8), null for SQL NULL.
	// A value sent before with COM_STMT_SEND_LONG_DATA is a marker with its
	// size. Values past the engine's limit are cut and end with a marker.
	// Absent when the engine could not decode them (a statement it did not
	// see prepared).
	Parameters []*string `json:"parameters,omitempty"`
}

// MySQLStatementSendLongData records COM_STMT_SEND_LONG_DATA: one piece of
// a parameter's value sent ahead of COM_STMT_EXECUTE
// ([TypeMySQLStatementSendLongData]).
type MySQLStatementSendLongData struct {
	Metadata
	DatabaseSessionMetadata
	StatementID uint32 `json:"statement_id"`
	ParameterID uint16 `json:"parameter_id"`
	// DataSize is the size of this piece in bytes.
	DataSize int64 `json:"data_size"`
	// Query is the statement's SQL when the engine saw it prepared.
	Query string `json:"query,omitempty"`
}

// MySQLStatementClose records COM_STMT_CLOSE: a prepared statement
// deallocated ([TypeMySQLStatementClose]).
type MySQLStatementClose struct {
	Metadata
	DatabaseSessionMetadata
	StatementID uint32 `json:"statement_id"`
	Query       string `json:"query,omitempty"`
}

// MySQLStatementReset records COM_STMT_RESET: the long data and cursor of a
// prepared statement discarded ([TypeMySQLStatementReset]).
type MySQLStatementReset struct {
	Metadata
	DatabaseSessionMetadata
	StatementID uint32 `json:"statement_id"`
	Query       string `json:"query,omitempty"`
}

// MySQLStatementFetch records COM_STMT_FETCH: rows read from a prepared
// statement's cursor ([TypeMySQLStatementFetch]).
type MySQLStatementFetch struct {
	Metadata
	DatabaseSessionMetadata
	StatementID uint32 `json:"statement_id"`
	// RowsCount is how many rows the client asked for.
	RowsCount uint32 `json:"rows_count"`
	Query     string `json:"query,omitempty"`
}

// MySQLInitDB records COM_INIT_DB: the default database (schema) changed,
// as by USE ([TypeMySQLInitDB]).
type MySQLInitDB struct {
	Metadata
	DatabaseSessionMetadata
	SchemaName string `json:"schema_name"`
}

// MySQLCreateDB records COM_CREATE_DB ([TypeMySQLCreateDB]).
type MySQLCreateDB struct {
	Metadata
	DatabaseSessionMetadata
	SchemaName string `json:"schema_name"`
}

// MySQLDropDB records COM_DROP_DB ([TypeMySQLDropDB]).
type MySQLDropDB struct {
	Metadata
	DatabaseSessionMetadata
	SchemaName string `json:"schema_name"`
}

// MySQLProcessKill records COM_PROCESS_KILL: a connection of the database
// being killed ([TypeMySQLProcessKill]). (KILL statements sent with
// COM_QUERY are [DatabaseSessionQuery] events.)
type MySQLProcessKill struct {
	Metadata
	DatabaseSessionMetadata
	// ProcessID is the connection ID the client sent: for a session
	// through Portcullis, the ID its proxy showed the client.
	ProcessID uint32 `json:"process_id"`
	// ServerProcessID is the database's own ID (thread ID) of that
	// connection, when the engine translated ProcessID; absent when the
	// ID was passed on as it was.
	ServerProcessID uint32 `json:"server_process_id,omitempty"`
}
