// Package audit defines Portcullis audit events, the [Emitter] interface that
// components send them to, and sinks that record them: [FileLog] (JSON lines
// on disk, with [Search] to read them back), [ZapEmitter] (a zap logger),
// [MultiEmitter] (fan-out) and [DiscardEmitter].
//
// # Events
//
// An event is a struct that embeds [Metadata] and some of the reusable
// blocks [UserMetadata], [ConnectionMetadata], [Status], [ResourceMetadata]
// and [DatabaseMetadata]; its pointer satisfies [Event]. The cluster events
// are:
//
//	type               struct             emitted when
//	user.login         UserLogin          a login succeeds or fails
//	cert.create        CertificateCreate  an authority issues a certificate
//	user.create/update/delete,
//	role.create/update/delete,
//	lock.create/delete,
//	join_token.create/delete
//	                   ResourceChange     a cluster resource changes
//	agent.join         AgentJoin          a host joins (or fails to) with a token
//	access.denied      AccessDenied       policy refuses an authenticated API call
//
// Database-session events embed [DatabaseSessionMetadata] (session ID
// "sid", user, roles, route, client address); protocol engines emit them:
//
//	db.session.start              DatabaseSessionStart  a session opens, or is refused (success false)
//	db.session.end                DatabaseSessionEnd    a session ends: duration, bytes_in, bytes_out
//	db.session.query              DatabaseSessionQuery  a simple-protocol query is sent (or refused)
//	db.session.postgres.parse     PostgresParse         a statement is prepared
//	db.session.postgres.bind      PostgresBind          parameters are bound (decoded per format code)
//	db.session.postgres.execute   PostgresExecute       a portal runs
//	db.session.postgres.close     PostgresClose         a statement or portal is closed
//	db.session.postgres.function  PostgresFunctionCall  a fast-path function call
//
// Their codes are in the D family. Names under db.session.mysql. are
// reserved for MySQL.
//
// Producers fill the event-specific fields and Metadata.Type; the emitter
// fills what is left empty: ID (a random UUIDv4), Time (from its clock,
// always stored in UTC) and Code (from the type and, for events with a
// Status, the outcome). [Stamper] does the same in front of any emitter and
// can add the cluster name.
//
// # JSON schema
//
// Every event is one JSON object ([MarshalEvent]). The keys are stable and
// documented on the struct fields; every event starts with
//
//	"event"         type, e.g. "user.login"
//	"code"          type and outcome, e.g. "C1000I" (success) or "C1000W" (failure)
//	"uid"           unique ID, a UUID
//	"time"          RFC 3339 with nanoseconds, UTC
//	"cluster_name"  when known
//
// followed by the blocks the event embeds, flattened: "sid"; "user", "roles",
// "impersonator"; "client_addr"; "success", "error"; "resource_kind",
// "resource_name"; "db_service", "db_protocol", "db_user", "db_name".
// A user.login written by a FileLog looks like this (one line in the file):
//
//	{"event":"user.login","code":"C1000I","uid":"0d4c...","time":"2026-11-23T20:30:00Z",
//	 "user":"alice","roles":["access"],"method":"password+totp",
//	 "client_addr":"203.0.113.7:51234","success":true}
//
// Compatibility rules, for this package and for readers:
//
//   - Keys and type names are never renamed, removed or given a new meaning;
//     new keys may appear in any event, so readers must ignore unknown keys
//     (UnmarshalEvent and Fields do).
//   - Optional keys are omitted when empty; "success" is always present in
//     events that have it.
//   - Codes: a family letter (C cluster; D database sessions), four
//     digits, and I (success/information) or W (failure/refusal).
//   - No event carries a secret: no passwords, TOTP codes, private keys or
//     join tokens. Join tokens appear as [TokenID].
//
// The golden files in testdata pin the JSON of each event type.
//
// # Files
//
// A [FileLog] writes to a directory it owns (mode 0700 when it creates it;
// files 0600). Each file is named for the UTC time it was started, to the
// millisecond, e.g. audit-20261123T203000.000Z.log, with a -N suffix when
// two would share a name; the newest is the one being written. A file is
// rotated when the UTC day changes or when the next event would take it past
// MaxSize, and the oldest rotated files beyond MaxBackups are deleted. A
// restarted FileLog appends to the newest file if it is from today and not
// full, after ending a torn last line left by a crash.
//
// Each line is one event. [Durability] chooses between an fsync per event
// ([SyncEachEvent]) and buffered writes fsynced every SyncInterval
// ([SyncBatch], the default); its documentation says what a crash loses in
// each mode.
//
// [Search] and [Scan] read the files back in the order they were written,
// decoding each line as [Fields] and filtering by type, user and time
// ([Query]). Lines that do not decode — a torn last line after a crash, or a
// line still being written — are skipped and counted, never fatal.
package audit
