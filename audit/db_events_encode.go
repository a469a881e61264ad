package audit

// The JSON encoders of the database-session events (see encode.go). Each
// writes the keys in the order of the struct's fields, as encoding/json
// does; TestAppendJSONMatchesEncodingJSON fails when a field is added to a
// struct and not here.

func (e *DatabaseSessionStart) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStatus(buf, &e.Status)
	return append(buf, '}'), nil
}

func (e *DatabaseSessionEnd) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	if !e.SessionStart.IsZero() {
		buf = append(buf, `,"session_start":`...)
		if buf, err = appendTime(buf, e.SessionStart); err != nil {
			return nil, err
		}
	}
	buf = appendIntMember(buf, "duration", int64(e.Duration))
	buf = appendIntMember(buf, "bytes_in", e.BytesIn)
	buf = appendIntMember(buf, "bytes_out", e.BytesOut)
	buf = appendOptStringMember(buf, "reason", e.Reason)
	return append(buf, '}'), nil
}

func (e *DatabaseSessionQuery) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "query", e.Query)
	buf = appendStatus(buf, &e.Status)
	return append(buf, '}'), nil
}

func (e *PostgresParse) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "statement_name", e.StatementName)
	buf = appendStringMember(buf, "query", e.Query)
	return append(buf, '}'), nil
}

func (e *PostgresBind) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "statement_name", e.StatementName)
	buf = appendStringMember(buf, "portal_name", e.PortalName)
	buf = appendOptStringMember(buf, "query", e.Query)
	buf = append(buf, `,"parameters":`...)
	buf = appendNullableStringArray(buf, e.Parameters)
	return append(buf, '}'), nil
}

func (e *PostgresExecute) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "portal_name", e.PortalName)
	buf = appendUintMember(buf, "max_rows", uint64(e.MaxRows))
	buf = appendOptStringMember(buf, "statement_name", e.StatementName)
	buf = appendOptStringMember(buf, "query", e.Query)
	return append(buf, '}'), nil
}

func (e *PostgresClose) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "object", e.Object)
	buf = appendOptStringMember(buf, "statement_name", e.StatementName)
	buf = appendOptStringMember(buf, "portal_name", e.PortalName)
	return append(buf, '}'), nil
}

func (e *PostgresFunctionCall) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "function_oid", uint64(e.FunctionOID))
	buf = append(buf, `,"function_args":`...)
	buf = appendNullableStringArray(buf, e.FunctionArgs)
	return append(buf, '}'), nil
}

func (e *MySQLStatementPrepare) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "query", e.Query)
	return append(buf, '}'), nil
}

func (e *MySQLStatementExecute) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "statement_id", uint64(e.StatementID))
	buf = appendOptStringMember(buf, "query", e.Query)
	if len(e.Parameters) > 0 {
		buf = append(buf, `,"parameters":`...)
		buf = appendNullableStringArray(buf, e.Parameters)
	}
	return append(buf, '}'), nil
}

func (e *MySQLStatementSendLongData) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "statement_id", uint64(e.StatementID))
	buf = appendUintMember(buf, "parameter_id", uint64(e.ParameterID))
	buf = appendIntMember(buf, "data_size", e.DataSize)
	buf = appendOptStringMember(buf, "query", e.Query)
	return append(buf, '}'), nil
}

// appendStatementQuery is the body of MySQLStatementClose and
// MySQLStatementReset: a statement ID and its query.
func appendStatementQuery(buf []byte, m *Metadata, d *DatabaseSessionMetadata, id uint32, query string) ([]byte, error) {
	buf, err := appendDBHead(buf, m, d)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "statement_id", uint64(id))
	buf = appendOptStringMember(buf, "query", query)
	return append(buf, '}'), nil
}

func (e *MySQLStatementClose) appendJSON(buf []byte) ([]byte, error) {
	return appendStatementQuery(buf, &e.Metadata, &e.DatabaseSessionMetadata, e.StatementID, e.Query)
}

func (e *MySQLStatementReset) appendJSON(buf []byte) ([]byte, error) {
	return appendStatementQuery(buf, &e.Metadata, &e.DatabaseSessionMetadata, e.StatementID, e.Query)
}

func (e *MySQLStatementFetch) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "statement_id", uint64(e.StatementID))
	buf = appendUintMember(buf, "rows_count", uint64(e.RowsCount))
	buf = appendOptStringMember(buf, "query", e.Query)
	return append(buf, '}'), nil
}

// appendSchema is the body of MySQLInitDB, MySQLCreateDB and MySQLDropDB.
func appendSchema(buf []byte, m *Metadata, d *DatabaseSessionMetadata, schema string) ([]byte, error) {
	buf, err := appendDBHead(buf, m, d)
	if err != nil {
		return nil, err
	}
	buf = appendStringMember(buf, "schema_name", schema)
	return append(buf, '}'), nil
}

func (e *MySQLInitDB) appendJSON(buf []byte) ([]byte, error) {
	return appendSchema(buf, &e.Metadata, &e.DatabaseSessionMetadata, e.SchemaName)
}

func (e *MySQLCreateDB) appendJSON(buf []byte) ([]byte, error) {
	return appendSchema(buf, &e.Metadata, &e.DatabaseSessionMetadata, e.SchemaName)
}

func (e *MySQLDropDB) appendJSON(buf []byte) ([]byte, error) {
	return appendSchema(buf, &e.Metadata, &e.DatabaseSessionMetadata, e.SchemaName)
}

func (e *MySQLProcessKill) appendJSON(buf []byte) ([]byte, error) {
	buf, err := appendDBHead(buf, &e.Metadata, &e.DatabaseSessionMetadata)
	if err != nil {
		return nil, err
	}
	buf = appendUintMember(buf, "process_id", uint64(e.ProcessID))
	if e.ServerProcessID != 0 {
		buf = appendUintMember(buf, "server_process_id", uint64(e.ServerProcessID))
	}
	return append(buf, '}'), nil
}
