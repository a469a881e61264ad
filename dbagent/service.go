package dbagent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
	"github.com/portcullis-db/portcullis/tunnel"
)

// Database is one database the agent serves.
type Database struct {
	// Name is what users connect to (pcl db connect NAME). Required.
	Name string `yaml:"name" json:"name"`
	// Protocol is "postgres" or "mysql". Required.
	Protocol string `yaml:"protocol" json:"protocol"`
	// URI is the database's host:port as the agent reaches it. Required.
	URI string `yaml:"uri" json:"uri"`
	// Labels are matched by roles' db_labels.
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Description is shown by `pcl db ls`.
	Description string `yaml:"description" json:"description,omitempty"`
	// TLS says how the agent verifies the database server.
	TLS DatabaseTLS `yaml:"tls" json:"-"`
	// AllowLoadDataLocal lets MySQL clients use LOAD DATA LOCAL INFILE
	// (the file's contents are not audited); refused by default.
	AllowLoadDataLocal bool `yaml:"allow_load_data_local" json:"-"`
	// MaxPacketSize bounds a MySQL client's command in bytes (the
	// statement or prepared-statement parameters with their data,
	// continuation packets included): a larger one is refused with
	// ER_NET_PACKET_TOO_LARGE, audited, and ends the session, without
	// the agent holding it. 0 means mysql.DefaultMaxPacketSize (64 MiB,
	// MySQL's default max_allowed_packet); set it to the database's
	// max_allowed_packet or lower.
	MaxPacketSize int `yaml:"max_packet_size" json:"-"`
}

// DatabaseTLS configures the agent's TLS connection to a database.
type DatabaseTLS struct {
	// CAFile holds the CA certificates that sign the database's server
	// certificate; empty means the cluster's database CA (a database
	// configured from `pctl auth sign --format db`).
	CAFile string `yaml:"ca_file"`
	// ServerName is the name checked against the server certificate;
	// empty means the host part of URI.
	ServerName string `yaml:"server_name"`
}

// Validate checks a database's configuration, naming the field at fault.
func (d *Database) Validate() error {
	switch {
	case d.Name == "":
		return errors.New("a database needs a name")
	case d.Protocol != "postgres" && d.Protocol != "mysql":
		return fmt.Errorf("database %q: protocol %q is not postgres or mysql", d.Name, d.Protocol)
	case d.URI == "":
		return fmt.Errorf("database %q needs a uri (host:port)", d.Name)
	}
	if _, _, err := net.SplitHostPort(d.URI); err != nil {
		return fmt.Errorf("database %q: uri %q is not host:port", d.Name, d.URI)
	}
	if d.MaxPacketSize < 0 {
		return fmt.Errorf("database %q: max_packet_size %d is negative; leave it out for the default of 64 MiB", d.Name, d.MaxPacketSize)
	}
	return nil
}

// Service is the database agent: it keeps reverse tunnels to the proxies,
// advertises its databases to the Auth service through them, and renews
// its own certificates.
type Service struct {
	// Credentials are the agent's host credentials. Required.
	Credentials *hostcert.Manager
	// ProxyAddrs are the proxies' public addresses (host:port). Required.
	ProxyAddrs []string
	// Databases are the databases this agent serves.
	Databases []Database
	// HeartbeatInterval is how often the inventory is refreshed (default
	// 10s); records expire after three intervals without a heartbeat.
	HeartbeatInterval time.Duration
	// Dialer opens TCP connections to the proxies (default net.Dialer).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Emitter receives the sessions' audit events; it should be
	// asynchronous (audit.Forwarder). Nil discards them.
	Emitter audit.Emitter
	// Drain, if set, runs once when Run stops, after every session has
	// ended and before the tunnel closes, so that what goes to the
	// cluster through the tunnel still can: typically closing the
	// audit.Forwarder that Emitter is, which delivers its last events.
	// Its context ends after DrainTimeout (default 10s).
	Drain        func(ctx context.Context)
	DrainTimeout time.Duration
	// UpstreamDialer opens TCP connections to the databases (default
	// net.Dialer).
	UpstreamDialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger logs the agent's operation (default: no-op).
	Logger *zap.Logger
	// Clock tells the time for certificate and lock checks (default
	// time.Now).
	Clock func() time.Time

	policy     policyCache
	dbCerts    dbCertCache
	roots      rootsCache
	pgCancels  pgCancels
	mysqlConns mysqlConns

	tlsOnce   sync.Once
	tlsConfig *tls.Config // sessionTLSConfig

	poolOnce sync.Once
	pgPool   *iobuf.Pool // relay buffers of PostgreSQL sessions
	myPool   *iobuf.Pool // relay buffers of MySQL sessions

	mu         sync.Mutex
	tunnel     *tunnel.Agent
	api        *authclient.Client
	stopping   bool            // Run is returning: no new sessions
	sessionCtx context.Context // what sessions run under: ends when Run's ctx does
	sessions   sync.WaitGroup  // sessions in progress, which Run waits for
}

// beginSession counts a session that Run must wait for and returns the
// context it runs under, unless Run is already stopping.
func (s *Service) beginSession() (context.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.sessionCtx == nil {
		return nil, false
	}
	s.sessions.Add(1)
	return s.sessionCtx, true
}

func (s *Service) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *Service) check() error {
	if s.Credentials == nil {
		return errors.New("dbagent: Service.Credentials is required")
	}
	if len(s.ProxyAddrs) == 0 {
		return errors.New("dbagent: Service.ProxyAddrs is required: the proxy's public address")
	}
	seen := map[string]bool{}
	for i := range s.Databases {
		if err := s.Databases[i].Validate(); err != nil {
			return fmt.Errorf("dbagent: %w", err)
		}
		if seen[s.Databases[i].Name] {
			return fmt.Errorf("dbagent: database %q is listed twice", s.Databases[i].Name)
		}
		seen[s.Databases[i].Name] = true
	}
	return nil
}

// Run serves until ctx is done, then returns ctx's error once every
// session has ended and written its last audit event (sessions end when
// ctx does). It returns a configuration error at once.
func (s *Service) Run(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("db")
	s.policy = policyCache{client: s.AuthClient, clock: s.now}
	s.dbCerts = dbCertCache{client: s.AuthClient, clock: s.now}
	if s.Credentials.Renew == nil {
		s.Credentials.Renew = s.renewThroughTunnel
	}
	names := make([]string, len(s.Databases))
	for i, d := range s.Databases {
		names[i] = d.Name
	}
	md, _ := json.Marshal(map[string]any{"databases": names})
	creds := s.Credentials.Current()
	ta := &tunnel.Agent{
		ProxyAddrs: s.ProxyAddrs,
		HostID:     creds.HostID,
		GetSigner: func() (ssh.Signer, error) {
			return s.Credentials.Current().SSHSigner()
		},
		GetHostCAKeys: func() []ssh.PublicKey { return s.Credentials.Current().SSHHostCAs },
		Handler:       s.handleSession,
		Metadata:      md,
		Dialer:        s.dialProxy,
		Logger:        log,
	}
	api, err := authClientVia(s.Credentials, ta.DialAuth)
	if err != nil {
		return err
	}
	defer api.Close()
	s.mu.Lock()
	s.tunnel, s.api = ta, api
	s.mu.Unlock()

	// The tunnel outlives ctx until the sessions have ended and Drain
	// has run; sessions see sessionCtx, which ends with ctx.
	tctx, cancelTunnel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTunnel()
	sessionCtx, cancelSessions := context.WithCancel(ctx)
	defer cancelSessions()
	s.mu.Lock()
	s.sessionCtx = sessionCtx
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); ta.Run(tctx) }()
	go func() { defer wg.Done(); s.Credentials.Run(ctx) }()
	go func() { defer wg.Done(); s.heartbeat(ctx, log) }()
	log.Info("database agent started", zap.String("host_id", creds.HostID),
		zap.Strings("proxies", s.ProxyAddrs), zap.Strings("databases", names))
	<-ctx.Done()
	// No new sessions; the running ones saw ctx end and are closing. Wait
	// until each has written its last audit event, let Drain deliver
	// them through the tunnel, then close it.
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.sessions.Wait()
	if s.Drain != nil {
		timeout := s.DrainTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		s.Drain(dctx)
		cancel()
	}
	cancelTunnel()
	wg.Wait()
	return ctx.Err()
}

// dialProxy opens TLS to a proxy's public port under the tunnel's ALPN,
// verifying the proxy against the cluster's host CA; SSH runs inside.
func (s *Service) dialProxy(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := s.Dialer
	if dial == nil {
		dial = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := authclient.TLSConfig(nil, s.Credentials.Current().HostCAs)
	cfg.ServerName = host
	cfg.NextProtos = []string{tunnel.ALPN}
	cfg.DynamicRecordSizingDisabled = true // SSH packets, not interactive bytes
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if conn.ConnectionState().NegotiatedProtocol != tunnel.ALPN {
		conn.Close()
		return nil, fmt.Errorf("the proxy at %s does not serve reverse tunnels (ALPN %s)", addr, tunnel.ALPN)
	}
	return conn, nil
}

// TunnelStatus lists the proxies the agent keeps reverse tunnels to, and
// whether each is connected (see tunnel.Agent.Status); nil before Run has
// started the tunnels.
func (s *Service) TunnelStatus() []tunnel.ProxyStatus {
	s.mu.Lock()
	ta := s.tunnel
	s.mu.Unlock()
	if ta == nil {
		return nil
	}
	return ta.Status()
}

// AuthClient returns the agent's client of the Auth service, which reaches
// it through the reverse tunnel with the agent's current credentials. It
// is shared: do not close it.
func (s *Service) AuthClient() (*authclient.Client, error) {
	s.mu.Lock()
	api := s.api
	s.mu.Unlock()
	if api == nil {
		return nil, errors.New("dbagent: the agent is not running")
	}
	return api, nil
}

func authClientVia(m *hostcert.Manager, dial func(context.Context) (net.Conn, error)) (*authclient.Client, error) {
	cur := m.Current()
	cfg := authclient.TLSConfig(nil, cur.HostCAs)
	cfg.ServerName = authclient.AuthServerName
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return m.Current().TLSCertificate(), nil
	}
	return authclient.New(authclient.AuthServerName+":443",
		authclient.WithTLSConfig(cfg),
		authclient.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }))
}

func (s *Service) renewThroughTunnel(ctx context.Context, _ *hostcert.Credentials, req authclient.RenewRequest) (*authclient.JoinResponse, error) {
	c, err := s.AuthClient()
	if err != nil {
		return nil, err
	}
	return c.RenewHost(ctx, req)
}

// heartbeat advertises the databases until ctx is done: at once, retried
// every second until the first success, then every HeartbeatInterval.
func (s *Service) heartbeat(ctx context.Context, log *zap.Logger) {
	interval := s.HeartbeatInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	dbs := make([]authclient.Database, len(s.Databases))
	for i, d := range s.Databases {
		dbs[i] = authclient.Database{Name: d.Name, Protocol: d.Protocol, URI: d.URI, Labels: d.Labels, Description: d.Description}
	}
	c, err := s.AuthClient()
	if err != nil {
		log.Error("cannot build the auth client", zap.Error(err))
		return
	}
	ok := false
	for {
		wait := time.Second
		hctx, cancel := context.WithTimeout(ctx, interval)
		err := c.Heartbeat(hctx, authclient.HeartbeatRequest{Databases: dbs, TTL: 3 * interval})
		cancel()
		switch {
		case err == nil:
			if !ok {
				log.Info("databases registered with the cluster", zap.Int("databases", len(dbs)))
			}
			ok, wait = true, interval
		case ctx.Err() != nil:
			return
		default:
			if ok {
				log.Warn("heartbeat failed; retrying", zap.Error(err))
			} else {
				log.Debug("heartbeat failed; retrying", zap.Error(err))
			}
			ok = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// pgBuffers and myBuffers are the pools that the relays of PostgreSQL and
// MySQL sessions borrow buffers from.
func (s *Service) pgBuffers() *iobuf.Pool { s.initBuffers(); return s.pgPool }
func (s *Service) myBuffers() *iobuf.Pool { s.initBuffers(); return s.myPool }

func (s *Service) initBuffers() {
	s.poolOnce.Do(func() {
		s.pgPool = iobuf.NewPool(32 << 10)
		s.myPool = iobuf.NewPool(64 << 10)
	})
}
