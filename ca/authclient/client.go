package authclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/ca/policy"
)

// maxResponseSize bounds what the client reads from the Auth service.
const maxResponseSize = 32 << 20

// Client calls the Auth service's API. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

type config struct {
	tls     *tls.Config
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration
	onTLS   func(tls.ConnectionState) error
}

// An Option configures a [Client].
type Option func(*config) error

// WithTLSConfig sets the TLS configuration: the client certificate the
// caller authenticates with and the roots that verify the server. Without
// it, New fails: the API is never spoken without verification.
func WithTLSConfig(c *tls.Config) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("authclient: WithTLSConfig: nil config")
		}
		cfg.tls = c
		return nil
	}
}

// WithDialContext makes the client reach the Auth service through dial,
// for example over a reverse-tunnel channel.
func WithDialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(cfg *config) error {
		cfg.dial = dial
		return nil
	}
}

// WithTimeout bounds each call (default 30s).
func WithTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("authclient: WithTimeout: %v is not a positive duration", d)
		}
		cfg.timeout = d
		return nil
	}
}

// withHandshakeHook makes the client dial TLS itself, one connection at a
// time, and call hook with each connection's state after the handshake.
func withHandshakeHook(hook func(tls.ConnectionState) error) Option {
	return func(cfg *config) error {
		cfg.onTLS = hook
		return nil
	}
}

// New returns a client for the Auth service (or a proxy that forwards its
// API) at addr, a host:port.
func New(addr string, opts ...Option) (*Client, error) {
	cfg := config{timeout: 30 * time.Second}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.tls == nil {
		return nil, errors.New("authclient: a TLS configuration is required (WithTLSConfig)")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("authclient: address %q is not host:port: %w", addr, err)
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg.tls.Clone(),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	if cfg.dial != nil {
		tr.DialContext = cfg.dial
	} else {
		tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if cfg.onTLS != nil {
		tr.MaxConnsPerHost = 1
		tr.ForceAttemptHTTP2 = false
		dial, tlsCfg := tr.DialContext, tr.TLSClientConfig
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, tlsCfg)
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			if err := cfg.onTLS(conn.ConnectionState()); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		}
	}
	return &Client{
		base: "https://" + addr,
		hc:   &http.Client{Transport: tr, Timeout: cfg.timeout},
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if raw, ok := in.(rawJSON); ok {
		body = bytes.NewReader(raw)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("authclient: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("authclient: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the auth service at %s: %w", strings.TrimPrefix(c.base, "https://"), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return fmt.Errorf("authclient: reading response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(data, &env) == nil && env.Error != nil {
			env.Error.Status = resp.StatusCode
			return env.Error
		}
		return &Error{Status: resp.StatusCode, Code: CodeInternal,
			Message: fmt.Sprintf("auth service answered HTTP %d", resp.StatusCode)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("authclient: decoding response of %s %s: %w", method, path, err)
	}
	return nil
}

// Ping describes the cluster. It needs no certificate.
func (c *Client) Ping(ctx context.Context) (*PingResponse, error) {
	var out PingResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/ping", nil, &out)
}

// GetCA returns the certificates of one authority type ("user", "host",
// "db"). It needs no certificate.
func (c *Client) GetCA(ctx context.Context, caType string) (*CAResponse, error) {
	var out CAResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/ca/"+url.PathEscape(caType), nil, &out)
}

// Login exchanges a password for a user certificate.
func (c *Client) Login(ctx context.Context, req LoginRequest) (*LoginResponse, error) {
	var out LoginResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/login", req, &out)
}

// Signup sets a new user's password with a sign-up token.
func (c *Client) Signup(ctx context.Context, req SignupRequest) (*SignupResponse, error) {
	var out SignupResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/signup", req, &out)
}

// SignRoute issues a route certificate for the calling user.
func (c *Client) SignRoute(ctx context.Context, req RouteRequest) (*Certs, error) {
	var out Certs
	return &out, c.do(ctx, http.MethodPost, "/v1/certs/route", req, &out)
}

// SignSession issues a proxy->agent session certificate (proxies only).
func (c *Client) SignSession(ctx context.Context, req SessionRequest) (*Certs, error) {
	var out Certs
	return &out, c.do(ctx, http.MethodPost, "/v1/certs/session", req, &out)
}

// SignDatabaseCert issues a database server certificate (administrators)
// or a database client certificate (database agents).
func (c *Client) SignDatabaseCert(ctx context.Context, req DatabaseCertRequest) (*Certs, error) {
	var out Certs
	return &out, c.do(ctx, http.MethodPost, "/v1/certs/db", req, &out)
}

// Join exchanges a join token for host certificates.
func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var out JoinResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/join", req, &out)
}

// RenewHost renews the caller's host certificates.
func (c *Client) RenewHost(ctx context.Context, req RenewRequest) (*JoinResponse, error) {
	var out JoinResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/certs/host", req, &out)
}

// Heartbeat refreshes the databases the calling agent serves.
func (c *Client) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/inventory/heartbeat", req, nil)
}

// ListDatabases lists the databases the caller may see.
func (c *Client) ListDatabases(ctx context.Context) ([]Database, error) {
	var out []Database
	return out, c.do(ctx, http.MethodGet, "/v1/inventory/databases", nil, &out)
}

// ListUsers lists the cluster's users.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	return out, c.do(ctx, http.MethodGet, "/v1/users", nil, &out)
}

// GetUser returns one user.
func (c *Client) GetUser(ctx context.Context, name string) (*User, error) {
	var out User
	return &out, c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(name), nil, &out)
}

// CreateUser adds a user.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*CreateUserResponse, error) {
	var out CreateUserResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/users", req, &out)
}

// UpdateUser replaces a user's roles and traits.
func (c *Client) UpdateUser(ctx context.Context, u User) (*User, error) {
	var out User
	return &out, c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(u.Name), u, &out)
}

// DeleteUser removes a user.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, nil)
}

// ListRoles lists the cluster's roles.
func (c *Client) ListRoles(ctx context.Context) ([]*policy.Role, error) {
	var out []*policy.Role
	return out, c.do(ctx, http.MethodGet, "/v1/roles", nil, &out)
}

// GetRole returns one role.
func (c *Client) GetRole(ctx context.Context, name string) (*policy.Role, error) {
	var out policy.Role
	return &out, c.do(ctx, http.MethodGet, "/v1/roles/"+url.PathEscape(name), nil, &out)
}

// CreateRole adds a role; it fails if one of that name exists.
func (c *Client) CreateRole(ctx context.Context, r *policy.Role) error {
	return c.do(ctx, http.MethodPost, "/v1/roles", r, nil)
}

// UpsertRole creates or replaces a role.
func (c *Client) UpsertRole(ctx context.Context, r *policy.Role) error {
	return c.do(ctx, http.MethodPut, "/v1/roles/"+url.PathEscape(r.Metadata.Name), r, nil)
}

// DeleteRole removes a role.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/roles/"+url.PathEscape(name), nil, nil)
}

// ListTokens lists join tokens (without their secrets).
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var out []Token
	return out, c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// CreateToken makes a join token and returns its secret, once.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (*CreateTokenResponse, error) {
	var out CreateTokenResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
}

// DeleteToken removes a join token by its ID.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// ListLocks lists the locks in force.
func (c *Client) ListLocks(ctx context.Context) ([]policy.Lock, error) {
	var out []policy.Lock
	return out, c.do(ctx, http.MethodGet, "/v1/locks", nil, &out)
}

// CreateLock locks a user or role out.
func (c *Client) CreateLock(ctx context.Context, req CreateLockRequest) (*policy.Lock, error) {
	var out policy.Lock
	return &out, c.do(ctx, http.MethodPost, "/v1/locks", req, &out)
}

// DeleteLock removes a lock.
func (c *Client) DeleteLock(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/locks/"+url.PathEscape(name), nil, nil)
}

// Status summarizes the cluster (administrators).
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// ProxyHeartbeat refreshes the calling proxy's record (proxies only).
func (c *Client) ProxyHeartbeat(ctx context.Context, req ProxyHeartbeatRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/inventory/proxies", req, nil)
}

// ListProxies lists the live proxies (cluster components).
func (c *Client) ListProxies(ctx context.Context) ([]Proxy, error) {
	var out []Proxy
	return out, c.do(ctx, http.MethodGet, "/v1/inventory/proxies", nil, &out)
}

// JoinTrust asks for the join-trust proof (see [VerifyJoinTrust]).
func (c *Client) JoinTrust(ctx context.Context, req JoinTrustRequest) (*JoinTrustResponse, error) {
	var out JoinTrustResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/join/trust", req, &out)
}

// EmitAuditEvents forwards a batch of audit events to the Auth service's
// audit log (database agents and proxies). Each event is the JSON of one
// event with "event", "uid" and "time" set, as audit.Forwarder produces
// them; see [EmitAuditEventsRequest]. It returns nil once the service has
// recorded the whole batch.
func (c *Client) EmitAuditEvents(ctx context.Context, events []json.RawMessage) error {
	// The events are JSON already: joined as they are, rather than
	// through encoding/json, which would scan and compact each again.
	// The service checks every one.
	size := len(`{"events":[]}`) + len(events)
	for i, e := range events {
		if len(e) == 0 {
			return fmt.Errorf("authclient: audit event %d of the batch is empty", i)
		}
		size += len(e)
	}
	body := make([]byte, 0, size)
	body = append(body, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e...)
	}
	body = append(body, "]}"...)
	return c.do(ctx, http.MethodPost, "/v1/audit/events", rawJSON(body), nil)
}

// rawJSON is a request body that is JSON already.
type rawJSON []byte

// SearchAuditEvents returns the most recently recorded audit events that
// match q, sorted by event time, oldest first (users with the auditor
// role, and the admin identity).
func (c *Client) SearchAuditEvents(ctx context.Context, q AuditQuery) ([]json.RawMessage, error) {
	v := url.Values{}
	for _, t := range q.Types {
		v.Add("type", t)
	}
	set := func(key, val string) {
		if val != "" {
			v.Set(key, val)
		}
	}
	set("user", q.User)
	set("db", q.DB)
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	path := "/v1/audit/events"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out AuditSearchResponse
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}
