package authclient

import (
	"encoding/json"
	"time"

	"github.com/portcullis-db/portcullis/ca/policy"
)

// Certificates and public keys travel as PEM: certificates as "CERTIFICATE"
// blocks, public keys as PKIX "PUBLIC KEY" blocks, SSH keys and certificates
// in authorized_keys form.

// PingResponse describes the cluster to a caller that has not logged in.
type PingResponse struct {
	ClusterName   string `json:"cluster_name"`
	ServerVersion string `json:"server_version"`
	// SecondFactor is "off", "optional" or "on": whether logins may, or
	// must, carry a one-time code.
	SecondFactor string `json:"second_factor"`
	// Proxy is set when a proxy answers (it forwards the ping and adds
	// how to reach databases through it).
	Proxy *ProxySettings `json:"proxy,omitempty"`
}

// ProxySettings tell clients where a proxy serves database protocols.
type ProxySettings struct {
	// PublicAddr is the proxy's public TLS port (ALPN routing).
	PublicAddr string `json:"public_addr"`
	// PostgresAddr is the host:port of its native PostgreSQL listener
	// (SSLRequest, then TLS); empty when it has none.
	PostgresAddr string `json:"postgres_addr,omitempty"`
	// MySQLAddr is the host:port of its native MySQL listener.
	MySQLAddr string `json:"mysql_addr,omitempty"`
}

// CAResponse holds the certificates of one authority type. During rotation
// there may be more than one.
type CAResponse struct {
	Type  string   `json:"type"`
	Certs []string `json:"certs"`
}

// LoginRequest exchanges a password (and one-time code) for a user
// certificate on PublicKey. The private key stays with the caller.
type LoginRequest struct {
	Username  string        `json:"username"`
	Password  string        `json:"password"`
	OTP       string        `json:"otp,omitempty"`
	PublicKey string        `json:"public_key"`
	TTL       time.Duration `json:"ttl,omitempty"`
}

// Certs is a signed certificate together with the CAs the holder needs.
type Certs struct {
	Cert      string    `json:"cert"`
	SSHCert   string    `json:"ssh_cert,omitempty"`
	HostCAs   []string  `json:"host_cas"` // to verify the proxy and Auth service
	UserCAs   []string  `json:"user_cas,omitempty"`
	DBCAs     []string  `json:"db_cas,omitempty"`
	SSHHostCA []string  `json:"ssh_host_ca,omitempty"` // authorized_keys form
	Expires   time.Time `json:"expires"`
}

// LoginResponse is the result of a successful login.
type LoginResponse struct {
	Certs
	ClusterName string              `json:"cluster_name"`
	Username    string              `json:"username"`
	Roles       []string            `json:"roles"`
	Traits      map[string][]string `json:"traits,omitempty"`
}

// SignupRequest sets a new user's password with the one-time sign-up token
// that an administrator handed them. TOTPSecret and TOTPCode enroll an
// authenticator app: the code proves the user's app holds the secret.
type SignupRequest struct {
	Token      string `json:"token"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret,omitempty"`
	TOTPCode   string `json:"totp_code,omitempty"`
}

// SignupResponse names the user the token was for.
type SignupResponse struct {
	Username string `json:"username"`
}

// RouteRequest asks for a certificate bound to one database route. The
// caller authenticates with its user certificate; the route certificate
// never outlives it.
type RouteRequest struct {
	PublicKey   string        `json:"public_key"`
	ServiceName string        `json:"service_name"`
	Protocol    string        `json:"protocol"`
	DBUser      string        `json:"db_user"`
	DBName      string        `json:"db_name"`
	TTL         time.Duration `json:"ttl,omitempty"`
}

// SessionRequest is a proxy's request for the short-lived certificate it
// presents to an agent on a user's behalf. UserCert is the route
// certificate the user presented to the proxy: the Auth service verifies it
// again, so a proxy cannot mint identities.
type SessionRequest struct {
	PublicKey string        `json:"public_key"`
	UserCert  string        `json:"user_cert"`
	TTL       time.Duration `json:"ttl,omitempty"`
}

// JoinRequest exchanges a join token for host certificates.
type JoinRequest struct {
	Token        string   `json:"token"`
	Role         string   `json:"role"`              // ca.SystemRoleDatabase or ca.SystemRoleProxy
	HostID       string   `json:"host_id,omitempty"` // empty: the Auth service picks one
	PublicKey    string   `json:"public_key"`
	SSHPublicKey string   `json:"ssh_public_key"`
	DNSNames     []string `json:"dns_names,omitempty"`
	IPAddresses  []string `json:"ip_addresses,omitempty"`
}

// JoinResponse carries the new host's certificates.
type JoinResponse struct {
	Certs
	HostID      string `json:"host_id"`
	ClusterName string `json:"cluster_name"`
}

// RenewRequest renews the caller's host certificates for new keys. The
// caller authenticates with its current host certificate.
type RenewRequest struct {
	PublicKey    string   `json:"public_key"`
	SSHPublicKey string   `json:"ssh_public_key,omitempty"`
	DNSNames     []string `json:"dns_names,omitempty"`
	IPAddresses  []string `json:"ip_addresses,omitempty"`
}

// Database is one database that an agent serves, as advertised in its
// heartbeats and listed by the inventory.
type Database struct {
	Name          string            `json:"name"`
	Protocol      string            `json:"protocol"`
	URI           string            `json:"uri,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Description   string            `json:"description,omitempty"`
	HostID        string            `json:"host_id,omitempty"`
	LastHeartbeat time.Time         `json:"last_heartbeat,omitempty"`
	Expires       time.Time         `json:"expires,omitempty"`
}

// HeartbeatRequest refreshes the databases an agent serves. Each record
// lives TTL past the heartbeat unless refreshed.
type HeartbeatRequest struct {
	Databases []Database    `json:"databases"`
	TTL       time.Duration `json:"ttl,omitempty"`
}

// User is a cluster user as administrators see it. Secrets (password
// hashes, second factors) never leave the Auth service.
type User struct {
	Name      string              `json:"name"`
	Roles     []string            `json:"roles"`
	Traits    map[string][]string `json:"traits,omitempty"`
	HasTOTP   bool                `json:"has_totp,omitempty"`
	Pending   bool                `json:"pending,omitempty"` // waiting for sign-up
	CreatedBy string              `json:"created_by,omitempty"`
	Created   time.Time           `json:"created"`
}

// CreateUserRequest adds a user. With Password empty the response carries
// a one-time sign-up token.
type CreateUserRequest struct {
	User
	Password string        `json:"password,omitempty"`
	TokenTTL time.Duration `json:"token_ttl,omitempty"`
}

// CreateUserResponse returns the sign-up token when one was made.
type CreateUserResponse struct {
	User          User      `json:"user"`
	SignupToken   string    `json:"signup_token,omitempty"`
	SignupExpires time.Time `json:"signup_expires,omitempty"`
}

// Token is a join token as listed. The secret itself is only ever shown
// once, when it is made; the Auth service stores a hash.
type Token struct {
	ID      string    `json:"id"` // a prefix of the secret's hash, for removal
	Type    string    `json:"type"`
	OneTime bool      `json:"one_time,omitempty"` // removed by the first join
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
}

// CreateTokenRequest makes a join token.
type CreateTokenRequest struct {
	Type    string        `json:"type"` // "db" or "proxy"
	TTL     time.Duration `json:"ttl,omitempty"`
	OneTime bool          `json:"one_time,omitempty"`
}

// CreateTokenResponse carries the new token's secret.
type CreateTokenResponse struct {
	Token
	Secret string `json:"secret"`
}

// CreateLockRequest locks a user or a role out of the cluster.
type CreateLockRequest struct {
	Target  policy.LockTarget `json:"target"`
	Message string            `json:"message,omitempty"`
	TTL     time.Duration     `json:"ttl,omitempty"`
}

// DatabaseCertRequest asks the database CA for a certificate: a server
// certificate for Hosts, or a client certificate for DBUser.
type DatabaseCertRequest struct {
	PublicKey string        `json:"public_key"`
	Hosts     []string      `json:"hosts,omitempty"`
	DBUser    string        `json:"db_user,omitempty"`
	TTL       time.Duration `json:"ttl,omitempty"`
}

// StatusResponse summarizes the cluster for administrators.
type StatusResponse struct {
	ClusterName string        `json:"cluster_name"`
	CAs         []CAPin       `json:"cas"`
	Users       int           `json:"users"`
	Databases   int           `json:"databases"`
	Uptime      time.Duration `json:"uptime"`
}

// CAPin is one authority and its fingerprint, the value of --ca-pin.
type CAPin struct {
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	Expires     time.Time `json:"expires"`
}

// Headers a proxy sets when it forwards an API call it terminated TLS for.
// The Auth service believes them only from a caller that presents a proxy
// host certificate; proxies remove them from what clients send.
const (
	// HeaderForwardedFor is the client's address. Its presence marks the
	// call as forwarded: the proxy's own identity is then never used.
	HeaderForwardedFor = "Portcullis-Forwarded-For"
	// HeaderForwardedCert is the client's certificate chain, each
	// certificate base64 (standard encoding) DER, separated by commas. The
	// proxy's TLS handshake proved the client holds the leaf's key.
	HeaderForwardedCert = "Portcullis-Forwarded-Cert"
)

// Proxy is one proxy as its heartbeats advertise it, for agents to find
// every proxy of the cluster.
type Proxy struct {
	HostID        string    `json:"host_id"`
	Addr          string    `json:"addr"` // public host:port agents dial
	LastHeartbeat time.Time `json:"last_heartbeat,omitempty"`
	Expires       time.Time `json:"expires,omitempty"`
}

// ProxyHeartbeatRequest refreshes a proxy's record.
type ProxyHeartbeatRequest struct {
	Addr string        `json:"addr"`
	TTL  time.Duration `json:"ttl,omitempty"`
}

// HeaderForwardedEKM carries, on a forwarded call, 32 bytes of keying
// material (base64) exported from the client's TLS connection to the proxy
// with label [JoinTrustLabel]. It binds a join-trust proof to that
// connection.
const HeaderForwardedEKM = "Portcullis-Forwarded-Ekm"

// JoinTrustLabel is the TLS exporter label of the join-trust proof.
const JoinTrustLabel = "EXPORTER-portcullis-join-trust"

// JoinTrustRequest asks the Auth service to prove that it knows a join
// token, over the caller's own TLS connection, before the caller trusts
// the host CA it returns. TokenID is [TokenID] of the token: the token
// itself is not sent until the caller trusts the server.
type JoinTrustRequest struct {
	TokenID string `json:"token_id"`
}

// JoinTrustResponse carries the host CAs and the proof: HMAC-SHA256 keyed
// with SHA-256(token) over the exported keying material and the CA
// certificates (see [VerifyJoinTrust]).
type JoinTrustResponse struct {
	HostCAs []string `json:"host_cas"`
	MAC     string   `json:"mac"` // base64
}

// AuthServerName is a DNS name in every Auth service certificate and in no
// other. Components that reach the Auth service through a tunnel channel
// verify it by this name.
const AuthServerName = "auth.portcullis.internal"

// CodeUnavailable says the Auth service cannot do what was asked in its
// configuration, e.g. search an audit log it does not keep.
const CodeUnavailable = "unavailable"

// IsUnavailable reports whether err says the Auth service cannot do what
// was asked in its configuration.
func IsUnavailable(err error) bool { return hasCode(err, CodeUnavailable) }

// IsAuditBatchRefused reports whether [Client.EmitAuditEvents] failed
// because the Auth service refused the batch for good (malformed or
// oversized events), so that sending it again cannot succeed. It is the
// audit.ForwarderConfig.IsPermanent of a forwarder that sends with
// EmitAuditEvents.
func IsAuditBatchRefused(err error) bool { return hasCode(err, CodeBadRequest) }

// Limits of POST /v1/audit/events.
const (
	MaxAuditBatchEvents = 1000    // events per batch
	MaxAuditBatchBytes  = 8 << 20 // bytes per request body
)

// EmitAuditEventsRequest is a batch of audit events a database agent or
// proxy forwards (see audit.Forwarder). Each event is one JSON object with
// at least "event", "uid" and "time"; the Auth service sets
// "cluster_name" and "forwarded_by" (the caller's host ID) and keeps every
// other key as sent.
type EmitAuditEventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// EmitAuditEventsResponse says what the Auth service did with a batch:
// Accepted events were written; Duplicates had a uid it had recorded
// recently and were skipped.
type EmitAuditEventsResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// Limits of GET /v1/audit/events.
const (
	DefaultAuditSearchLimit = 1000
	MaxAuditSearchLimit     = 10000
)

// AuditQuery selects audit events. Zero fields do not filter.
type AuditQuery struct {
	// Types are event types, e.g. "db.session.query"; "db.session.*"
	// matches by prefix.
	Types []string
	User  string
	// DB is a database service name ("db_service").
	DB string
	// Since starts the search this long before now (by the Auth service's
	// clock); From starts it at a time. Use one of them.
	Since time.Duration
	From  time.Time
	// To ends the search (exclusive).
	To time.Time
	// Limit is how many of the newest matching events to return (default
	// DefaultAuditSearchLimit, at most MaxAuditSearchLimit).
	Limit int
}

// AuditSearchResponse is the answer of GET /v1/audit/events: the most
// recently recorded matching events, sorted by event time (oldest first),
// each one JSON object as the audit log holds it (see package audit for
// the schema).
type AuditSearchResponse struct {
	Events []json.RawMessage `json:"events"`
	// Skipped counts lines of the log that are not events (torn by a
	// crash, corrupt).
	Skipped int `json:"skipped,omitempty"`
}
