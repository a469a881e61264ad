package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Login methods for [UserLogin.Method].
const (
	LoginMethodPassword     = "password"      // password only
	LoginMethodPasswordTOTP = "password+totp" // password and a TOTP code
	LoginMethodSignup       = "signup"        // first login through an invitation, setting the password
)

// UserLogin records a login attempt, successful or not ([TypeUserLogin]).
// On failure User is the name that was tried (it may not exist) and Roles is
// empty.
type UserLogin struct {
	Metadata
	UserMetadata
	// Method is how the user authenticated: one of the LoginMethod constants.
	Method string `json:"method"`
	ConnectionMetadata
	Status
}

// Certificate types for [CertificateCreate.CertType].
const (
	CertTypeUser     = "user"      // a person's certificate (user CA)
	CertTypeRoute    = "route"     // a person's certificate for one database route (user CA)
	CertTypeHost     = "host"      // a cluster component's certificate (host CA)
	CertTypeSession  = "session"   // proxy->agent certificate carrying a user's identity and route (host CA)
	CertTypeDBServer = "db_server" // a database server's certificate (database CA)
	CertTypeDBClient = "db_client" // the client certificate an agent presents to a database (database CA)
	CertTypeSSHHost  = "ssh_host"  // the proxy's SSH host certificate for the tunnel (host CA)
	CertTypeSSHAgent = "ssh_agent" // an agent's SSH certificate for the tunnel (host CA)
)

// CertificateCreate records a certificate issued by one of the cluster's
// authorities ([TypeCertCreate]). UserMetadata names who asked for it (a
// person, or a host ID for host certificates); Identity is what the
// certificate says.
type CertificateCreate struct {
	Metadata
	UserMetadata
	ConnectionMetadata
	// CertType is one of the CertType constants.
	CertType string `json:"cert_type"`
	// Identity is the subject of the certificate.
	Identity CertificateIdentity `json:"identity"`
	// Serial is the certificate's serial number in lower-case hexadecimal
	// (big.Int.Text(16)); for SSH certificates, the decimal serial.
	Serial string `json:"serial,omitempty"`
	// Expires is the certificate's NotAfter (ValidBefore for SSH).
	Expires time.Time `json:"expires,omitzero"`
}

// CertificateIdentity is the identity inside an issued certificate.
type CertificateIdentity struct {
	// Username is the subject: a person, a host ID, or for db_client
	// certificates the database user.
	Username string   `json:"username"`
	Roles    []string `json:"roles,omitempty"`
	// Traits are the identity's traits (e.g. "db_users"); never secrets.
	Traits  map[string][]string `json:"traits,omitempty"`
	LoginIP string              `json:"login_ip,omitempty"`
	// Route is set for route and session certificates.
	Route *DatabaseMetadata `json:"route,omitempty"`
	// Hosts are the DNS names and IP addresses (or SSH principals) of
	// server certificates.
	Hosts []string `json:"hosts,omitempty"`
}

// Resource kinds for [ResourceMetadata.Kind].
const (
	KindUser      = "user"
	KindRole      = "role"
	KindLock      = "lock"
	KindJoinToken = "join_token"
)

// ResourceChange records a user, role, lock or join token being created,
// updated or deleted (TypeUserCreate ... TypeJoinTokenDelete). UserMetadata
// names who made the change.
type ResourceChange struct {
	Metadata
	UserMetadata
	ConnectionMetadata
	ResourceMetadata
	// Expires is when the resource lapses by itself (locks and join tokens
	// with a TTL); zero when it does not.
	Expires time.Time `json:"resource_expires,omitzero"`
	// Details holds kind-specific attributes worth auditing, e.g. a lock's
	// target ("target": "user=alice") or a join token's system roles
	// ("roles": "Db"). Never secrets.
	Details map[string]string `json:"details,omitempty"`
}

// AgentJoin records a host joining the cluster with a join token
// ([TypeAgentJoin]), successfully or not.
type AgentJoin struct {
	Metadata
	// HostID is the ID the host joined as (or asked to join as).
	HostID   string `json:"host_id"`
	Hostname string `json:"hostname,omitempty"`
	// SystemRole is the role the host joined with, e.g. "Db" or "Proxy".
	SystemRole string `json:"system_role"`
	// TokenID identifies the join token used, as [TokenID] computes it; it
	// matches the resource_name of the token's join_token.create event. The
	// token itself is a secret and is never recorded.
	TokenID string `json:"token_id,omitempty"`
	ConnectionMetadata
	Status
}

// AccessDenied records an API call refused by policy ([TypeAccessDenied]):
// the caller was authenticated but its roles do not allow the action.
type AccessDenied struct {
	Metadata
	UserMetadata
	ConnectionMetadata
	// Action is the refused call, e.g. "users.create" or "POST /v1/users".
	Action string `json:"action"`
	// ResourceMetadata names the resource acted on, when there is one.
	ResourceMetadata
	// Reason says why the call was refused; never a secret.
	Reason string `json:"reason,omitempty"`
}

// TokenID returns the identifier under which a join token appears in audit
// events: the first 16 hexadecimal digits of its SHA-256. Join tokens are
// secrets, so events carry this instead; it lets an administrator match an
// agent.join to the join_token.create that made the token. It is safe only
// for tokens with high entropy (as the Auth service generates them).
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}
