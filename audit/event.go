package audit

import "time"

// An Event is one audit record. Concrete events are structs that embed
// [Metadata] (which provides GetMetadata) plus any of the reusable blocks
// [UserMetadata], [ConnectionMetadata], [Status], [ResourceMetadata] and
// [DatabaseMetadata], and are passed to an [Emitter] by pointer.
//
// Embedders may define their own events the same way; give them a Type
// outside the names this package uses (see the Type constants).
type Event interface {
	GetMetadata() *Metadata
}

// Metadata is the common head of every event. Its JSON keys are the same for
// all events, so a reader can filter by type, user and time without knowing
// the concrete event.
type Metadata struct {
	// Type is the event name, e.g. [TypeUserLogin]. Required.
	Type string `json:"event"`
	// Code identifies the event and its outcome, e.g. [CodeUserLogin] or
	// [CodeUserLoginFailure]. Emitters fill it from Type and Status when it
	// is empty.
	Code string `json:"code"`
	// ID is unique per event. Emitters fill it with a random UUIDv4 when it
	// is empty.
	ID string `json:"uid"`
	// Time is when the event happened, in UTC. Emitters fill it from their
	// clock when it is zero and convert it to UTC otherwise.
	Time time.Time `json:"time"`
	// ClusterName is the Portcullis cluster the event happened in.
	ClusterName string `json:"cluster_name,omitempty"`
}

// GetMetadata returns m itself, so that every struct embedding Metadata is an
// [Event] through its pointer.
func (m *Metadata) GetMetadata() *Metadata { return m }

// UserMetadata names the person (or host, for host-initiated actions) on
// whose authority an action happened.
type UserMetadata struct {
	// User is the Portcullis user name; for actions by a cluster component,
	// its host ID.
	User string `json:"user"`
	// Roles are the user's roles at the time of the event, when known.
	Roles []string `json:"roles,omitempty"`
	// Impersonator is set when another identity acted on User's behalf.
	Impersonator string `json:"impersonator,omitempty"`
}

// ConnectionMetadata describes the network peer that caused the event.
type ConnectionMetadata struct {
	// ClientAddr is the peer's address as host:port (or just host).
	ClientAddr string `json:"client_addr,omitempty"`
}

// Status is the outcome of an attempt that can fail (a login, an agent join).
type Status struct {
	// Success reports whether the attempt succeeded. Always present in JSON.
	Success bool `json:"success"`
	// Error says why the attempt failed, in words safe to show an
	// administrator. It never contains a secret.
	Error string `json:"error,omitempty"`
}

// GetStatus returns s itself; emitters use it to pick the failure code of an
// event that embeds Status.
func (s *Status) GetStatus() *Status { return s }

// ResourceMetadata names a cluster resource (a user, role, lock or join token).
type ResourceMetadata struct {
	// Kind is one of the Kind constants, e.g. [KindUser].
	Kind string `json:"resource_kind,omitempty"`
	// Name is the resource's name. For join tokens it is the token's
	// fingerprint ([TokenFingerprint]), never the token itself.
	Name string `json:"resource_name,omitempty"`
}

// DatabaseMetadata is a database route: which database service, over which
// protocol, as which database user, into which database. Certificate events
// carry it for route certificates; database-session events will embed it.
//
// The field names carry a Database prefix so that they stay unambiguous
// next to [UserMetadata] and [ResourceMetadata] in events that embed both.
type DatabaseMetadata struct {
	DatabaseService  string `json:"db_service,omitempty"`
	DatabaseProtocol string `json:"db_protocol,omitempty"` // "postgres" or "mysql"
	DatabaseUser     string `json:"db_user,omitempty"`
	DatabaseName     string `json:"db_name,omitempty"`
}

// Event types. The names are part of the stable schema: they are never
// renamed or reused for a different shape.
const (
	TypeUserLogin       = "user.login"        // UserLogin
	TypeCertCreate      = "cert.create"       // CertificateCreate
	TypeUserCreate      = "user.create"       // ResourceChange
	TypeUserUpdate      = "user.update"       // ResourceChange
	TypeUserDelete      = "user.delete"       // ResourceChange
	TypeRoleCreate      = "role.create"       // ResourceChange
	TypeRoleUpdate      = "role.update"       // ResourceChange
	TypeRoleDelete      = "role.delete"       // ResourceChange
	TypeLockCreate      = "lock.create"       // ResourceChange
	TypeLockDelete      = "lock.delete"       // ResourceChange
	TypeJoinTokenCreate = "join_token.create" // ResourceChange
	TypeJoinTokenDelete = "join_token.delete" // ResourceChange
	TypeAgentJoin       = "agent.join"        // AgentJoin
	TypeAccessDenied    = "access.denied"     // AccessDenied

	// Database-session events (db.session.start, .end, .query and
	// db.session.postgres.*) are in db_events.go. Reserved for MySQL (a
	// later release):
	//
	//	db.session.mysql.statements.prepare, .execute, .send_long_data,
	//	  .close, .reset, .fetch, .bulk_execute
	//	db.session.mysql.init_db, .create_db, .drop_db, .shut_down,
	//	  .process_kill, .debug, .refresh
	//
	// Every name under "db." is reserved for database-session events.
)

// Event codes: a letter for the family (C: cluster, D: database sessions,
// see db_events.go), four digits for the event, and a suffix for the outcome
// (I: success or information, W: failure or refusal). Codes are stable.
const (
	CodeUserLogin        = "C1000I"
	CodeUserLoginFailure = "C1000W"
	CodeCertCreate       = "C1100I"
	CodeUserCreate       = "C1200I"
	CodeUserUpdate       = "C1201I"
	CodeUserDelete       = "C1202I"
	CodeRoleCreate       = "C1210I"
	CodeRoleUpdate       = "C1211I"
	CodeRoleDelete       = "C1212I"
	CodeLockCreate       = "C1220I"
	CodeLockDelete       = "C1222I"
	CodeJoinTokenCreate  = "C1230I"
	CodeJoinTokenDelete  = "C1232I"
	CodeAgentJoin        = "C1300I"
	CodeAgentJoinFailure = "C1300W"
	CodeAccessDenied     = "C1400W"
)

// defaultCode is the code for an event of type typ; failed selects the
// failure variant where there is one. Unknown types get "".
func defaultCode(typ string, failed bool) string {
	switch typ {
	case TypeUserLogin:
		if failed {
			return CodeUserLoginFailure
		}
		return CodeUserLogin
	case TypeCertCreate:
		return CodeCertCreate
	case TypeUserCreate:
		return CodeUserCreate
	case TypeUserUpdate:
		return CodeUserUpdate
	case TypeUserDelete:
		return CodeUserDelete
	case TypeRoleCreate:
		return CodeRoleCreate
	case TypeRoleUpdate:
		return CodeRoleUpdate
	case TypeRoleDelete:
		return CodeRoleDelete
	case TypeLockCreate:
		return CodeLockCreate
	case TypeLockDelete:
		return CodeLockDelete
	case TypeJoinTokenCreate:
		return CodeJoinTokenCreate
	case TypeJoinTokenDelete:
		return CodeJoinTokenDelete
	case TypeAgentJoin:
		if failed {
			return CodeAgentJoinFailure
		}
		return CodeAgentJoin
	case TypeAccessDenied:
		return CodeAccessDenied
	}
	return dbDefaultCode(typ, failed)
}
