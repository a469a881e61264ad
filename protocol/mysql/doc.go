// Package mysql is Portcullis's MySQL and MariaDB wire-protocol engine:
// the front-end login a proxy runs on a client connection, the hand-off
// from proxy to agent, the upstream session an agent opens to a database
// with a client certificate, and the relay that carries a session while it
// audits the client's commands. Logins (greetings, authentication) use
// github.com/go-mysql-org/go-mysql; the command phase is parsed here.
//
// # Front end (proxy)
//
// [ServerHandshake] sends a protocol 10 greeting that advertises a MySQL 8
// server ([DefaultServerVersion]) with the caching_sha2_password plugin
// ([AuthPlugin]), so that MySQL 8 and 9 clients (which no longer have
// mysql_native_password), MariaDB clients and the Go drivers log in
// without flags. It requires the TLS upgrade (a client that logs in
// without it gets ERROR 3159 with [TLSRequiredMessage]), requests the
// client's certificate and returns the client's login ([ClientHello]). The
// certificate is the only credential: whatever password a client sends is
// ignored. On a connection whose TLS an ALPN router already terminated,
// FrontendConfig.TLSConfig is nil and the greeting does not offer TLS.
// Refusals are ERR packets ([ClientHello.WriteError], [WriteError] with the
// Code and State constants), which the mysql client prints as
// "ERROR 1045 (28000): message".
//
// # Capability flags
//
// The greeting offers [ProxyCapabilities]; the client picks a subset
// ([ClientHello].Capabilities), and the agent's upstream login asks for
// exactly that subset (limited to what the database has), because several
// flags change how packets are framed: with CLIENT_DEPRECATE_EOF result
// sets end in an OK packet, without it in EOF packets (the mariadb client
// does not take it, go-sql-driver does); CLIENT_SESSION_TRACK changes OK
// packets. go-mysql's client would ask for CLIENT_DEPRECATE_EOF and
// CLIENT_QUERY_ATTRIBUTES on its own; [ConnectUpstream] drops what the
// client did not negotiate. Compression, query attributes and optional
// result set metadata are never offered. See [ProxyCapabilities] for the
// full list and the reasons.
//
// # Hand-off (proxy to agent)
//
// The proxy sends [ClientHello.SessionStart] into the agent's channel with
// [WriteSessionStart] (length-prefixed JSON, at most
// [MaxSessionStartSize]) and then relays bytes both ways; the agent reads
// it with [ReadSessionStart], which reads exactly that much. The login is
// still unanswered at this point: the agent answers it once the database
// session is open ([SessionStart.WriteAuthOK]) or refused
// ([SessionStart.WriteError], [ServerError.Forward]), with the sequence ID
// the client expects ([SessionStart].Sequence).
//
// # Upstream (agent)
//
// [ConnectUpstream] takes a TCP connection to the database, reads its
// greeting, upgrades to verified TLS with the client certificate for the
// database user (MariaDB and MySQL users created with REQUIRE SUBJECT
// '/CN=user' and no password) and logs in. CLIENT_LOCAL_FILES is dropped
// unless [UpstreamParams].AllowLoadDataLocal, so that by default the
// database refuses LOAD DATA LOCAL INFILE with its own error. A database
// that does not accept the certificate login is a
// [*PasswordRequiredError]; another ERR packet is a [*ServerError] that the
// agent forwards to the client; a database without a framing flag the
// client negotiated is a [*CapabilityError].
//
// A typical agent session:
//
//	start, _ := mysql.ReadSessionStart(conn)
//	up, err := mysql.ConnectUpstream(ctx, dbConn, dbTLS, mysql.UpstreamParams{
//		User: route.DBUser, Database: dbName, // the route decides
//		Capabilities: start.Capabilities, Charset: start.Charset, Attributes: start.Attributes,
//	})
//	// on error: PasswordRequired -> start.WriteError(conn, CodeAccessDenied, ...);
//	// *ServerError -> se.Forward(conn, start.Sequence)
//	ids.add(start.ConnectionID, up.ConnectionID) // for KILL
//	start.WriteAuthOK(conn, up.Status)
//	stats, err := (&mysql.Relay{Client: conn, Server: up.Conn, Emitter: em, Session: meta, ConnIDs: ids.lookup}).Run(ctx)
//	// emit db.session.end with stats
//
// # Relay and audit
//
// [Relay] reads the client's packets (3-byte length, sequence ID),
// reassembles commands continued over several packets and decodes only
// what audit needs: COM_QUERY (a db.session.query event),
// COM_STMT_PREPARE, COM_STMT_EXECUTE (with its parameters, decoded by
// their binary types), COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE,
// COM_STMT_RESET, COM_STMT_FETCH (db.session.mysql.statements.*),
// COM_INIT_DB, COM_CREATE_DB, COM_DROP_DB and COM_PROCESS_KILL
// (db.session.mysql.*). Each event is emitted before the command can run:
// a command larger than the relay's buffer streams through with its last
// byte held back until its event is out. SQL text longer than QueryLimit
// and parameters longer than ParamLimit are cut and end with
// "...(truncated, N bytes)"; binary parameters are rendered as "\x" and
// hexadecimal.
//
// The client sees the proxy's connection ID, not the database's: the
// relay translates the ID in COM_PROCESS_KILL and in
// "KILL [QUERY|CONNECTION] ID" statements with [Relay].ConnIDs, so that
// Ctrl-C in the mysql client (which sends KILL QUERY from a second
// connection) reaches the right session.
//
// COM_CHANGE_USER, replication and clone commands, COM_SHUTDOWN,
// COM_REFRESH, COM_DEBUG and unknown commands are refused with an ERR
// packet and audited as failed db.session.query events; the session goes
// on. A command larger than MaxPacketSize ([DefaultMaxPacketSize]), a
// packet out of sequence or a malformed audited command ends the session
// ([*PacketRefusedError]): the client gets an ERR packet (after the relay
// has read and dropped the rest of the command, never holding it), and the
// refusal is audited.
//
// Nothing is flushed per command: forwarded bytes are buffered and written
// when the client has nothing more buffered. The server -> client
// direction is copied in 64 KiB reads without parsing, except that the
// first packet of the answer to COM_STMT_PREPARE is read on its way for the
// statement ID and parameter count (see [Relay] for the assumption this
// makes). Memory per session is bounded: fixed buffers, the SQL text kept
// for events, and a bounded memory of prepared statements (TrackLimit).
//
// # Buffer ownership
//
// Values returned by [ServerHandshake], [ReadSessionStart] and
// [ConnectUpstream] are the caller's. Events handed to the Emitter
// reference no relay buffer and are not touched after EmitAuditEvent
// returns, so an emitter may keep them.
//
// # Fuzzing and benchmarks
//
// FuzzRelayClientPackets feeds arbitrary client streams to a Relay,
// FuzzDecodeCommand checks that a command decodes the same held in place
// and streamed, FuzzParseHandshakeResponse and FuzzReadSessionStart parse
// arbitrary logins and hand-offs; seeds and crashers live in
// testdata/fuzz. Benchmarks measure the audit decoder per command and the
// bytes allocated per byte relayed in each direction:
//
//	go test -run '^$' -bench . -benchtime 1s ./protocol/mysql
package mysql
