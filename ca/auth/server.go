package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

// ErrServerClosed is returned by [Server.Serve] after Shutdown or Close.
var ErrServerClosed = errors.New("auth: server closed")

// Version is reported by the ping endpoint.
const Version = "0.1.0"

// maxRequestSize bounds a request body.
const maxRequestSize = 1 << 20

// Config configures a [Server]. Storage is required; every other field has
// a default that its comment gives.
type Config struct {
	// Storage holds the cluster's state. Required.
	Storage storage.Backend
	// ClusterName names the cluster on first start (default "portcullis").
	// Later starts read the stored name; a different non-empty value is an
	// error, since certificates carry the name.
	ClusterName string
	// Emitter receives the cluster's audit events (default: none kept).
	Emitter audit.Emitter
	// AuditSearcher answers audit searches (GET /v1/audit/events). Default:
	// Emitter, if it can search (an *audit.FileLog); otherwise searching
	// is unavailable.
	AuditSearcher AuditSearcher
	// Logger logs the service's own operation (default: no-op).
	Logger *zap.Logger
	// Clock tells the time (default time.Now).
	Clock func() time.Time
	// DNSNames and IPAddresses are the names clients reach the service by;
	// they go into its TLS certificate besides localhost and loopback.
	DNSNames    []string
	IPAddresses []net.IP
	// UserCertTTL is the lifetime of user certificates when the login asks
	// for none (default 12h). Roles' max_session_ttl caps it.
	UserCertTTL time.Duration
	// HostCertTTL is the lifetime of host certificates (default 72h);
	// components renew them at half-life.
	HostCertTTL time.Duration
	// SessionCertTTL is the lifetime of proxy->agent certificates
	// (default 10m).
	SessionCertTTL time.Duration
	// SecondFactor is "off", "optional" (default) or "on": whether logins
	// may, or must, carry a TOTP code.
	SecondFactor string
	// MaxLoginAttempts is how many failed logins one username may have in
	// LoginAttemptWindow before further attempts are refused until the
	// window passes (default 5 in 15m). MaxSourceLoginAttempts is the same
	// for one source address (default 30).
	MaxLoginAttempts       int
	MaxSourceLoginAttempts int
	LoginAttemptWindow     time.Duration
	// BcryptCost is the cost of new password hashes (default
	// bcrypt.DefaultCost).
	BcryptCost int
}

func (c *Config) setDefaults() error {
	if c.Storage == nil {
		return errors.New("auth: Config.Storage is required")
	}
	if c.Emitter == nil {
		c.Emitter = audit.DiscardEmitter{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.UserCertTTL == 0 {
		c.UserCertTTL = 12 * time.Hour
	}
	if c.HostCertTTL == 0 {
		c.HostCertTTL = 72 * time.Hour
	}
	if c.SessionCertTTL == 0 {
		c.SessionCertTTL = 10 * time.Minute
	}
	switch c.SecondFactor {
	case "":
		c.SecondFactor = "optional"
	case "off", "optional", "on":
	default:
		return fmt.Errorf("auth: Config.SecondFactor is %q; use off, optional or on", c.SecondFactor)
	}
	if c.MaxLoginAttempts == 0 {
		c.MaxLoginAttempts = 5
	}
	if c.MaxSourceLoginAttempts == 0 {
		c.MaxSourceLoginAttempts = 30
	}
	if c.LoginAttemptWindow == 0 {
		c.LoginAttemptWindow = 15 * time.Minute
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = defaultBcryptCost
	}
	for name, d := range map[string]time.Duration{"UserCertTTL": c.UserCertTTL, "HostCertTTL": c.HostCertTTL,
		"SessionCertTTL": c.SessionCertTTL, "LoginAttemptWindow": c.LoginAttemptWindow} {
		if d < 0 {
			return fmt.Errorf("auth: Config.%s is negative", name)
		}
	}
	return nil
}

// Server is the Auth service. Create it with [New].
type Server struct {
	cfg     Config
	log     *zap.Logger
	cluster *cluster
	limiter *loginLimiter
	chains  *chainCache // client certificate chains that verified
	started time.Time
	handler http.Handler

	mu       sync.Mutex
	srv      *http.Server
	shutdown bool
}

// New loads the cluster from cfg.Storage, creating it on first start.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("auth"), started: cfg.Clock(), chains: newChainCache(chainCacheSize)}
	cl, err := loadCluster(ctx, &s.cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.cluster = cl
	s.limiter = newLoginLimiter(cfg.MaxLoginAttempts, cfg.MaxSourceLoginAttempts, cfg.LoginAttemptWindow, cfg.Clock)
	s.handler = s.routes()
	return s, nil
}

// ClusterName is the cluster's name.
func (s *Server) ClusterName() string { return s.cluster.name }

// Authority returns the current authority of a type, for components that
// run in the same process as the Auth service.
func (s *Server) Authority(t ca.AuthorityType) *ca.Authority { return s.cluster.authority(t) }

// Handler is the API as an http.Handler, for embedding behind a listener
// that terminates the same mutual TLS (see [Server.TLSConfig]).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the server side of the API's mutual TLS: the service's host
// certificate, and client certificates requested (verified per call
// against the user or host CA with the service's clock).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cluster.serverCert(), nil
		},
		// The handshake proves the client holds the key of the certificate
		// it sent; the chain is verified per request by authenticate.
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// Serve accepts connections on l, terminating TLS itself. It always returns
// a non-nil error; after Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.srv == nil {
		s.srv = &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		}
	}
	srv := s.srv
	s.mu.Unlock()
	err := srv.Serve(tls.NewListener(l, s.TLSConfig()))
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits for calls in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Close stops the server at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// caller is who made a request.
type caller struct {
	id   *ca.Identity // nil for unauthenticated calls
	addr string       // the client's IP address
}

func (c *caller) isHost(role string) bool {
	if c.id == nil || c.id.Kind != ca.KindHost {
		return false
	}
	for _, r := range c.id.Roles {
		if r == role {
			return true
		}
	}
	return false
}

func (c *caller) name() string {
	if c.id == nil {
		return ""
	}
	return c.id.Username
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// public serves a call that needs no certificate.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := s.identify(r)
		if err == nil {
			err = h(w, r, c)
		}
		s.finish(w, r, c, err)
	})
}

// authed serves a call that needs a valid, unlocked certificate.
func (s *Server) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, certErr, err := s.identify(r)
		if err == nil {
			err = certErr
		}
		if err == nil && c.id == nil {
			err = apiError(authclient.CodeUnauthenticated, "this call needs a certificate; log in first (pcl login)")
		}
		if err == nil {
			err = s.checkLocks(r.Context(), c.id)
		}
		if err == nil {
			err = h(w, r, c)
		}
		s.finish(w, r, c, err)
	})
}

// identify finds who made a call: the certificate of the TLS peer or, for a
// call a proxy forwarded, the certificate the proxy forwarded (if any) and
// the client's address. certErr says why a presented certificate was
// refused; err refuses the call outright.
func (s *Server) identify(r *http.Request) (c *caller, certErr, err error) {
	c = &caller{addr: remoteIP(r)}
	var chain []*x509.Certificate
	if r.TLS != nil {
		chain = r.TLS.PeerCertificates
	}
	fwdFor, fwdCert := r.Header.Get(authclient.HeaderForwardedFor), r.Header.Get(authclient.HeaderForwardedCert)
	if fwdFor != "" || fwdCert != "" {
		peer, perr := s.verifyChain(chain)
		if perr != nil || peer.Kind != ca.KindHost || !hasRole(peer.Roles, ca.SystemRoleProxy) {
			return c, nil, apiError(authclient.CodeAccessDenied, "only proxies may forward calls")
		}
		if host, _, err := net.SplitHostPort(fwdFor); err == nil {
			c.addr = host
		} else if fwdFor != "" {
			c.addr = fwdFor
		}
		// A chain the proxy forwarded before need not be parsed again.
		if ders, ok := forwardedDER(fwdCert); ok && len(ders) > 0 {
			if id := s.rememberedChain(chainKeyOfDER(ders)); id != nil {
				c.id = id
				return c, nil, nil
			}
		}
		chain, err = decodeForwardedCert(fwdCert)
		if err != nil {
			return c, nil, err
		}
	}
	if len(chain) == 0 {
		return c, nil, nil
	}
	id, err := s.verifyChain(chain)
	if err != nil {
		return c, err, nil
	}
	c.id = id
	return c, nil, nil
}

// verifyChain verifies a certificate against the user CA, then the host CA.
// A chain that verified before is found in s.chains (see chainCache) and
// not verified again.
func (s *Server) verifyChain(chain []*x509.Certificate) (*ca.Identity, error) {
	if len(chain) == 0 {
		return nil, apiError(authclient.CodeUnauthenticated, "no certificate was presented")
	}
	trust := s.trust()
	key := chainKeyOf(chain)
	if id := s.chains.get(key, trust, s.cfg.Clock()); id != nil {
		return id, nil
	}
	id, err := s.verifyChainUncached(chain, trust)
	if err != nil {
		return nil, err
	}
	s.chains.add(key, trust, chain, id)
	return id, nil
}

// trust returns the authorities client certificates are verified against.
func (s *Server) trust() trustSet {
	return trustSet{user: s.cluster.authority(ca.UserCA).Cert, host: s.cluster.authority(ca.HostCA).Cert}
}

// rememberedChain returns the identity of a chain that verifyChain
// accepted and would accept now, or nil.
func (s *Server) rememberedChain(key chainKey) *ca.Identity {
	return s.chains.get(key, s.trust(), s.cfg.Clock())
}

// verifyChainUncached is verifyChain without the cache, against the
// authorities of trust.
func (s *Server) verifyChainUncached(chain []*x509.Certificate, trust trustSet) (*ca.Identity, error) {
	id, err := s.cluster.verifierWithRoot(ca.UserCA, trust.user).Verify(chain)
	if ca.IsUnknownAuthority(err) {
		id, err = s.cluster.verifierWithRoot(ca.HostCA, trust.host).Verify(chain)
	}
	if err != nil {
		code := authclient.CodeUnauthenticated
		if ca.IsExpired(err) {
			code = authclient.CodeCertExpired
		}
		return nil, apiError(code, "%s", sentence(err))
	}
	if id.Kind == ca.KindSession {
		return nil, apiError(authclient.CodeAccessDenied, "session certificates cannot call the auth service")
	}
	if id.Kind == ca.KindUser && id.Route != nil {
		return nil, apiError(authclient.CodeAccessDenied,
			"a database route certificate cannot call the auth service; use your login certificate (pcl login)")
	}
	return id, nil
}

// maxForwardedCerts bounds the chain a proxy may forward.
const maxForwardedCerts = 4

// forwardedDER decodes the forwarded certificate chain without parsing
// it; ok is false when decodeForwardedCert would refuse the header.
func forwardedDER(h string) (ders [][]byte, ok bool) {
	for n := 0; h != ""; n++ {
		if n == maxForwardedCerts {
			return nil, false
		}
		var part string
		part, h, _ = strings.Cut(h, ",")
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
		if err != nil {
			return nil, false
		}
		ders = append(ders, der)
	}
	return ders, true
}

func decodeForwardedCert(h string) ([]*x509.Certificate, error) {
	if h == "" {
		return nil, nil
	}
	parts := strings.Split(h, ",")
	if len(parts) > maxForwardedCerts {
		return nil, apiError(authclient.CodeBadRequest, "the forwarded certificate chain is too long")
	}
	out := make([]*x509.Certificate, 0, len(parts))
	for _, p := range parts {
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil {
			return nil, apiError(authclient.CodeBadRequest, "the forwarded certificate is not base64")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, apiError(authclient.CodeBadRequest, "the forwarded certificate does not parse")
		}
		out = append(out, cert)
	}
	return out, nil
}

// authorize checks that c may perform verb on resource.
func (s *Server) authorize(ctx context.Context, c *caller, resource, verb string) error {
	if c.isHost(ca.SystemRoleAdmin) {
		return nil
	}
	if c.id == nil || c.id.Kind != ca.KindUser {
		return apiError(authclient.CodeAccessDenied, "%s may not %s %s", c.name(), verb, resource)
	}
	checker, err := s.checkerFor(ctx, c.id)
	if err != nil {
		return err
	}
	if err := checker.CheckRule(resource, verb); err != nil {
		s.emit(ctx, &audit.AccessDenied{
			Metadata:           audit.Metadata{Type: audit.TypeAccessDenied},
			UserMetadata:       audit.UserMetadata{User: c.id.Username, Roles: c.id.Roles},
			ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: c.addr},
			Action:             resource + "." + verb,
			Reason:             sentence(err),
		})
		return err
	}
	return nil
}

// authorizeRead is authorize for reads that cluster components with one
// of hostRoles also need (agents check roles and locks per session).
func (s *Server) authorizeRead(ctx context.Context, c *caller, resource, verb string, hostRoles ...string) error {
	for _, r := range hostRoles {
		if c.isHost(r) {
			return nil
		}
	}
	return s.authorize(ctx, c, resource, verb)
}

// checkerFor builds an access checker from the identity's roles as they are
// stored now, so a changed role takes effect on the next call.
func (s *Server) checkerFor(ctx context.Context, id *ca.Identity) (*policy.AccessChecker, error) {
	roles := make([]*policy.Role, 0, len(id.Roles))
	for _, name := range id.Roles {
		r, err := s.getRole(ctx, name)
		if storage.IsNotFound(err) {
			s.log.Warn("identity names a role that no longer exists", zap.String("user", id.Username), zap.String("role", name))
			continue
		}
		if err != nil {
			return nil, err
		}
		roles = append(roles, r)
	}
	return policy.NewAccessChecker(roles, id.Traits), nil
}

func (s *Server) finish(w http.ResponseWriter, r *http.Request, c *caller, err error) {
	if err == nil {
		return
	}
	var ae *authclient.Error
	switch {
	case errors.As(err, &ae):
	case policy.IsLocked(err):
		ae = &authclient.Error{Code: authclient.CodeLocked, Message: sentence(err)}
	case policy.IsAccessDenied(err):
		ae = &authclient.Error{Code: authclient.CodeAccessDenied, Message: sentence(err)}
	case storage.IsNotFound(err):
		ae = &authclient.Error{Code: authclient.CodeNotFound, Message: "not found"}
	case storage.IsAlreadyExists(err):
		ae = &authclient.Error{Code: authclient.CodeAlreadyExists, Message: "it exists already"}
	case storage.IsCompareFailed(err):
		ae = &authclient.Error{Code: authclient.CodeConflict, Message: "a concurrent change won; try again"}
	case errors.Is(err, context.Canceled):
		return
	default:
		s.log.Error("request failed", zap.String("path", r.URL.Path), zap.String("caller", c.name()), zap.Error(err))
		ae = &authclient.Error{Code: authclient.CodeInternal,
			Message: "the auth service failed to handle the request; its log has the details"}
	}
	writeJSON(w, authclient.StatusForCode(ae.Code), map[string]any{"error": ae})
}

func apiError(code, format string, args ...any) *authclient.Error {
	return &authclient.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// sentence is err's message with a capitalised first letter removed of any
// "pkg:" prefix, for showing to a person.
func sentence(err error) string {
	msg := err.Error()
	for _, p := range []string{"ca: ", "policy: ", "auth: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly, bounded by maxRequestSize.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestSize+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(authclient.CodeBadRequest, "the request body is not valid JSON for this call: %v", err)
	}
	if dec.More() {
		return apiError(authclient.CodeBadRequest, "the request body has data after the JSON object")
	}
	return nil
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) emit(ctx context.Context, e audit.Event) {
	md := e.GetMetadata()
	if md.ClusterName == "" {
		md.ClusterName = s.cluster.name
	}
	if err := s.cfg.Emitter.EmitAuditEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("failed to write audit event", zap.String("event", md.Type), zap.Error(err))
	}
}

// rootsOf returns the current certificates of an authority type.
func certsPEM(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = string(ca.EncodeCertPEM(c.Raw))
	}
	return out
}
