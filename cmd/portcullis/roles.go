package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/dbagent"
	"github.com/portcullis-db/portcullis/proxy"
	"github.com/portcullis-db/portcullis/tunnel"
)

// proxyHeartbeatInterval is how often the proxy refreshes its own record
// and the list of peers it tells agents about.
const proxyHeartbeatInterval = 10 * time.Second

// credentials loads a component's saved credentials, or obtains new ones:
// from the Auth service in this process, or by joining at joinAddr.
func credentials(ctx context.Context, dir string, local *authRole, joinAddr, token, pin string, req hostcert.Request, log *zap.Logger) (*hostcert.Credentials, error) {
	creds, err := hostcert.Load(dir)
	switch {
	case err == nil && !creds.NeedsReplacing(req.Role, time.Now()):
		return creds, nil
	case err == nil:
		log.Info("saved credentials are expired or for another role; obtaining new ones", zap.String("dir", dir))
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("reading credentials from %s: %w", dir, err)
	}
	if local != nil {
		creds, err = hostcert.Obtain(ctx, local.srv.IssueHostCredentials, req)
	} else {
		creds, err = hostcert.Join(ctx, joinAddr, token, pin, req)
	}
	if err != nil {
		return nil, err
	}
	if err := creds.Save(dir); err != nil {
		return nil, err
	}
	log.Info("joined the cluster", zap.String("host_id", creds.HostID), zap.String("role", creds.Role),
		zap.String("cluster", creds.ClusterName))
	return creds, nil
}

// proxyRole is the proxy: one public TLS port that routes by ALPN to the
// reverse-tunnel server and the forwarded Auth API.
type proxyRole struct {
	log        *zap.Logger
	l          net.Listener
	publicAddr string
	authAddr   string
	creds      *hostcert.Manager
	router     *proxy.Router
	tunnel     *tunnel.Server
	tunnelL    net.Listener
	httpSrv    *http.Server
	httpL      net.Listener
	settings   *authclient.ProxySettings

	api        *authclient.Client
	audit      *audit.Forwarder
	dispatcher *proxy.Dispatcher
	pg         *proxy.PostgresServer
	pgTLS      net.Listener
	pgNative   net.Listener
	my         *proxy.MySQLServer
	myTLS      net.Listener
	myNative   net.Listener
}

// requestClientCert asks clients for a certificate that the handlers
// verify themselves, so that a refusal reaches the client in its
// protocol's own words rather than as a TLS alert.
const requestClientCert = tls.RequestClientCert

func prepareProxy(ctx context.Context, cfg *Config, local *authRole, log *zap.Logger) (*proxyRole, error) {
	log = log.Named("proxy")
	p := &proxyRole{log: log, authAddr: cfg.Proxy.AuthAddr}
	if local != nil && p.authAddr == "" {
		p.authAddr = local.addr()
	}
	var err error
	p.l, err = net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy.listen: %w", err)
	}
	p.publicAddr = cfg.Proxy.PublicAddr
	if p.publicAddr == "" {
		host, port, _ := net.SplitHostPort(p.l.Addr().String())
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		p.publicAddr = net.JoinHostPort(host, port)
	}
	dns, ips := splitAddrs([]string{p.publicAddr, cfg.Proxy.Listen})
	dns = append(dns, "localhost")
	ips = append(ips, net.IPv4(127, 0, 0, 1))
	creds, err := credentials(ctx, filepath.Join(cfg.DataDir, "proxy"), local, p.authAddr, cfg.Proxy.JoinToken, cfg.Proxy.CAPin,
		hostcert.Request{Role: ca.SystemRoleProxy, DNSNames: dns, IPAddresses: ipStrings(ips)}, log)
	if err != nil {
		p.l.Close()
		return nil, err
	}
	p.creds = hostcert.NewManager(creds)
	p.creds.Dir = filepath.Join(cfg.DataDir, "proxy")
	p.creds.DNSNames, p.creds.IPAddresses = dns, ipStrings(ips)
	p.creds.Logger = log
	p.creds.Renew = func(ctx context.Context, cur *hostcert.Credentials, req authclient.RenewRequest) (*authclient.JoinResponse, error) {
		c, err := p.authClient()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.RenewHost(ctx, req)
	}

	p.tunnel = &tunnel.Server{
		GetHostSigner: func() (ssh.Signer, error) { return p.creds.Current().SSHSigner() },
		GetCAKeys:     func() []ssh.PublicKey { return p.creds.Current().SSHHostCAs },
		ChannelHandlers: map[string]tunnel.ChannelHandler{
			tunnel.ChannelAuth: tunnel.ForwardTo(nil, "tcp", p.authAddr, log.Named("auth-forward")),
		},
		Logger: log.Named("tunnel"),
	}
	p.router = &proxy.Router{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.creds.Current().TLSCertificate(), nil },
		Logger:         log.Named("router"),
	}
	p.tunnelL = p.router.Handle([]string{tunnel.ALPN}, proxy.Route{ClientAuth: tls.NoClientCert})
	p.httpL = p.router.Handle([]string{"h2", "http/1.1"}, proxy.Route{ClientAuth: requestClientCert, Default: true})
	p.settings = &authclient.ProxySettings{PublicAddr: p.publicAddr}
	if err := p.setupDatabases(cfg); err != nil {
		p.Close()
		return nil, err
	}
	api, err := proxy.NewAPIForwarder(proxy.APIForwarderConfig{
		AuthAddr:  p.authAddr,
		TLSConfig: p.authTLSConfig(),
		Logger:    log,
		Settings:  p.settings,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.httpSrv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	return p, nil
}

// authTLSConfig is the proxy's mTLS client configuration to the Auth
// service, following certificate renewals.
func (p *proxyRole) authTLSConfig() *tls.Config {
	cfg := authclient.TLSConfig(nil, p.creds.Current().HostCAs)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return p.creds.Current().TLSCertificate(), nil
	}
	return cfg
}

func (p *proxyRole) authClient() (*authclient.Client, error) {
	return authclient.New(p.authAddr, authclient.WithTLSConfig(p.authTLSConfig()))
}

func (p *proxyRole) run(ctx context.Context) error {
	p.log.Info("proxy listening", zap.String("addr", p.l.Addr().String()), zap.String("public_addr", p.publicAddr),
		zap.String("host_id", p.creds.Current().HostID), zap.String("auth", p.authAddr))
	errc := make(chan error, 7)
	go func() { errc <- p.router.Serve(p.l) }()
	go func() { errc <- p.tunnel.Serve(p.tunnelL) }()
	go func() { errc <- p.httpSrv.Serve(p.httpL) }()
	p.runDatabases(ctx, errc)
	go p.creds.Run(ctx)
	go p.heartbeat(ctx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	p.httpSrv.Shutdown(sctx)
	p.closeDatabases()
	if p.tunnel.Shutdown(sctx) != nil {
		p.tunnel.Close()
	}
	p.router.Close()
	return err
}

// heartbeat advertises this proxy and tells agents about its peers.
func (p *proxyRole) heartbeat(ctx context.Context) {
	c, err := p.authClient()
	if err != nil {
		p.log.Error("cannot build the auth client", zap.Error(err))
		return
	}
	defer c.Close()
	for {
		err := c.ProxyHeartbeat(ctx, authclient.ProxyHeartbeatRequest{Addr: p.publicAddr, TTL: 3 * proxyHeartbeatInterval})
		if err == nil {
			var proxies []authclient.Proxy
			if proxies, err = c.ListProxies(ctx); err == nil {
				peers := make([]tunnel.Peer, 0, len(proxies))
				for _, px := range proxies {
					peers = append(peers, tunnel.Peer{ID: px.HostID, Addr: px.Addr})
				}
				p.tunnel.SetPeers(peers)
			}
		}
		if err != nil && ctx.Err() == nil {
			p.log.Warn("proxy heartbeat failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(proxyHeartbeatInterval):
		}
	}
}

func (p *proxyRole) Close() error {
	p.router.Close()
	for _, l := range []net.Listener{p.pgNative, p.myNative} {
		if l != nil {
			l.Close()
		}
	}
	if p.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.audit.Close(ctx)
	}
	return p.l.Close()
}

// dbRole is the database agent.
type dbRole struct {
	svc   *dbagent.Service
	audit *audit.Forwarder
}

// ready says whether the agent can take sessions: a reverse tunnel to at
// least one proxy is up.
func (d *dbRole) ready() error {
	st := d.svc.TunnelStatus()
	if len(st) == 0 {
		return errors.New("the agent has not started its reverse tunnels yet")
	}
	var last string
	for _, p := range st {
		if p.Connected {
			return nil
		}
		if p.LastError != "" {
			last = fmt.Sprintf(" (%s: %s)", p.Addr, p.LastError)
		}
	}
	return fmt.Errorf("no reverse tunnel to a proxy is up%s", last)
}

func prepareDB(ctx context.Context, cfg *Config, local *authRole, pxy *proxyRole, log *zap.Logger) (*dbRole, error) {
	proxyAddr := cfg.DB.ProxyAddr
	if proxyAddr == "" {
		proxyAddr = pxy.publicAddr
	}
	dir := filepath.Join(cfg.DataDir, "db")
	// An agent reaches the cluster only through the proxy: it joins
	// through the proxy's forwarded API.
	creds, err := credentials(ctx, dir, local, proxyAddr, cfg.DB.JoinToken, cfg.DB.CAPin,
		hostcert.Request{Role: ca.SystemRoleDatabase, HostID: cfg.DB.HostID}, log.Named("db"))
	if err != nil {
		return nil, err
	}
	m := hostcert.NewManager(creds)
	m.Dir = dir
	m.Logger = log.Named("db")
	d := &dbRole{}
	fwd, err := audit.NewForwarder(audit.ForwarderConfig{
		Send: func(ctx context.Context, events []json.RawMessage) error {
			c, err := d.svc.AuthClient()
			if err != nil {
				return err
			}
			return c.EmitAuditEvents(ctx, events)
		},
		IsPermanent: authclient.IsAuditBatchRefused,
		SpoolDir:    filepath.Join(dir, "audit-spool"),
		ClusterName: creds.ClusterName,
		Logger:      log.Named("db.audit"),
	})
	if err != nil {
		return nil, err
	}
	d.audit = fwd
	d.svc = &dbagent.Service{
		Credentials: m,
		ProxyAddrs:  []string{proxyAddr},
		Databases:   cfg.DB.Databases,
		Logger:      log,

		HeartbeatInterval: cfg.DB.HeartbeatInterval,
		Emitter:           fwd,
		// Deliver the sessions' last events while the tunnel is up.
		Drain:        func(ctx context.Context) { fwd.Close(ctx) },
		DrainTimeout: shutdownTimeout,
	}
	return d, nil
}

func (d *dbRole) run(ctx context.Context) error {
	err := d.svc.Run(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	d.audit.Close(cctx)
	st := d.audit.Stats()
	d.svc.Logger.Info("audit forwarder closed", zap.Uint64("delivered", st.Delivered), zap.Int64("spooled_bytes", st.SpoolBytes),
		zap.Bool("unreachable", st.Unreachable), zap.Uint64("lost", st.Lost))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
