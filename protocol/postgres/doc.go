// Package postgres is Portcullis's PostgreSQL wire-protocol engine: the
// front-end handshake a proxy needs on a client connection, the upstream
// session an agent opens to a database with a client certificate, cancel
// requests, and the relay that carries a session while it audits the
// client's statements. Messages are encoded and decoded with
// github.com/jackc/pgx/v5/pgproto3.
//
// # Front end (proxy)
//
// [ReadStartup] reads the first message of a client connection, exactly
// and with a size limit: an SSLRequest (answer with [WriteSSLAccept] and
// start TLS, or [WriteEncryptionRefused]), a GSSEncRequest (refuse it), a
// CancelRequest (route it to the session that owns the key), or a
// StartupMessage. Refusals go to the client as a FATAL ErrorResponse with
// [WriteError] and one of the SQLSTATE constants ([CodeInvalidAuthorization],
// [CodeConnectionFailure], [CodeInvalidCatalogName],
// [CodeTooManyConnections], [CodeProtocolViolation]); psql prints the
// message after "FATAL:".
//
// # Upstream (agent)
//
// [ConnectUpstream] takes a TCP connection to the database, asks for TLS,
// does a verified handshake with the client certificate for the database
// user, sends the StartupMessage and reads up to ReadyForQuery. The
// database must authenticate the agent by certificate: a request for a
// password is a [*PasswordRequiredError]; an ErrorResponse is a
// [*ServerError] that the agent forwards to the client verbatim. The
// session always speaks protocol 3.0; [NegotiateProtocol] tells a client
// that asked for more.
//
// The agent then gives the client a substitute cancel key
// ([NewBackendKey]) and replays the startup with it
// ([Upstream.ReplayStartup]: AuthenticationOk, ParameterStatus,
// BackendKeyData, ReadyForQuery in one write). The real key
// ([Upstream].Key) stays on the agent: when a CancelRequest with the
// substitute arrives, the agent maps it back and calls [SendCancel], which
// dials the database anew (TLS first, plaintext if the server declines).
//
// A typical agent session:
//
//	msg, _ := postgres.ReadStartup(conn, 0)
//	startup := msg.(*pgproto3.StartupMessage)
//	postgres.NegotiateProtocol(conn, startup)
//	params := startup.Parameters // then force "user" and "database" from the route
//	up, err := postgres.ConnectUpstream(ctx, dbConn, dbTLS, params)
//	// on *ServerError: err.Forward(conn); otherwise WriteError(conn, ...)
//	key, _ := postgres.NewBackendKey(rand.Reader) // remember key -> up.Key
//	up.ReplayStartup(conn, key)
//	stats, err := (&postgres.Relay{Client: conn, Server: up.Conn, Emitter: em, Session: meta}).Run(ctx)
//	// emit db.session.end with stats
//
// # Relay and audit
//
// [Relay] decodes only what audit needs, in the client -> server
// direction: Query (a db.session.query event), Parse, Bind, Execute, Close
// and FunctionCall (db.session.postgres.parse, .bind, .execute, .close,
// .function). It tracks named and unnamed prepared statements and portals
// so that Bind and Execute events carry the SQL they run. Bind parameters
// and function arguments are recorded by format code: text as UTF-8 (or
// "\x" and hexadecimal when it is not valid UTF-8), binary as "\x" and
// hexadecimal, NULL as JSON null; values longer than ParamLimit, and SQL
// longer than QueryLimit, are cut and end with "...(truncated, N bytes)".
// Each event is emitted before its message is forwarded.
//
// Nothing is flushed per message: forwarded bytes are buffered and written
// when the client has nothing more buffered. The server -> client direction
// is copied as bytes without parsing. Memory is bounded: fixed 32 KiB
// buffers, audited messages held whole only up to MaxMessageSize, other
// messages (CopyData) streamed in pieces, and a bounded memory of
// statements. A client message larger than MaxMessageSize is refused: the
// client gets a FATAL ErrorResponse ([CodeProtocolViolation]), the refusal
// is audited as a failed db.session.query and the session ends.
//
// # Buffer ownership
//
// Messages returned by [ReadStartup] are the caller's. Events handed to
// the Emitter reference no relay buffer and are not touched after
// EmitAuditEvent returns, so an emitter may keep them.
//
// # Fuzzing and benchmarks
//
// FuzzRelayClientMessages feeds arbitrary client streams to a Relay and
// FuzzReadStartup arbitrary startup packets; seeds and crashers live in
// testdata/fuzz. Benchmarks measure the audit decoder per message and the
// bytes allocated per byte relayed in each direction:
//
//	go test -run '^$' -bench . -benchtime 1s ./protocol/postgres
package postgres
