package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"net"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/proxy"
)

// lockTTL is how long the proxy uses the lock list before reading it
// again; lockMaxStale how long it may use it while the Auth service is
// unreachable.
const (
	lockTTL      = 5 * time.Second
	lockMaxStale = 5 * time.Minute
)

// lockCache reads the cluster's locks at most every lockTTL.
type lockCache struct {
	api *authclient.Client

	mu      sync.Mutex
	fetched time.Time
	tried   time.Time
	locks   []policy.Lock
}

func (c *lockCache) get(ctx context.Context) ([]policy.Lock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	usable := !c.fetched.IsZero() && now.Sub(c.fetched) < lockMaxStale
	if (usable && now.Sub(c.fetched) < lockTTL) || (usable && now.Sub(c.tried) < lockTTL) {
		return c.locks, nil
	}
	c.tried = now
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	locks, err := c.api.ListLocks(ctx)
	if err != nil {
		if usable {
			return c.locks, nil
		}
		return nil, err
	}
	c.locks, c.fetched = locks, now
	return locks, nil
}

// setupDatabases adds the database front ends to a prepared proxy: the
// dispatcher, the PostgreSQL server on the public port's ALPN routes and
// on an optional native port, and the audit forwarder for the sessions it
// refuses.
func (p *proxyRole) setupDatabases(cfg *Config) error {
	var err error
	p.api, err = p.authClient()
	if err != nil {
		return err
	}
	p.audit, err = audit.NewForwarder(audit.ForwarderConfig{
		Send:        p.api.EmitAuditEvents,
		IsPermanent: authclient.IsAuditBatchRefused,
		SpoolDir:    filepath.Join(cfg.DataDir, "proxy", "audit-spool"),
		ClusterName: p.creds.Current().ClusterName,
		Logger:      p.log.Named("audit"),
	})
	if err != nil {
		return err
	}
	p.dispatcher = &proxy.Dispatcher{
		Tunnels: p.tunnel,
		SignSession: func(ctx context.Context, userCert *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
			pubPEM, err := authclient.MarshalPublicKey(pub)
			if err != nil {
				return nil, err
			}
			resp, err := p.api.SignSession(ctx, authclient.SessionRequest{PublicKey: pubPEM, UserCert: string(ca.EncodeCertPEM(userCert.Raw))})
			if err != nil {
				return nil, err
			}
			return ca.ParseCertPEM([]byte(resp.Cert))
		},
		HostCAs: func() []*x509.Certificate { return p.creds.Current().HostCAs },
		Logger:  p.log.Named("dispatch"),
	}
	p.tunnel.OnAgentEvent = p.dispatcher.OnAgentEvent
	locks := &lockCache{api: p.api}
	frontend := func(name string) proxy.Frontend {
		return proxy.Frontend{
			Dispatcher:  p.dispatcher,
			UserCAs:     func() []*x509.Certificate { return p.creds.Current().UserCAs },
			ClusterName: p.creds.Current().ClusterName,
			Locks:       locks.get,
			Emitter:     p.audit,
			Logger:      p.log.Named(name),
		}
	}
	p.pg = &proxy.PostgresServer{Frontend: frontend("postgres"), GetCertificate: p.router.GetCertificate}
	p.my = &proxy.MySQLServer{Frontend: frontend("mysql"), GetCertificate: p.router.GetCertificate}
	p.myTLS = p.router.Handle([]string{proxy.ALPNMySQL}, proxy.Route{ClientAuth: requestClientCert})
	if cfg.Proxy.MySQLListen != "" {
		p.myNative, err = net.Listen("tcp", cfg.Proxy.MySQLListen)
		if err != nil {
			return err
		}
		p.settings.MySQLAddr = publicAddrFor(cfg.Proxy.MySQLPublicAddr, p.publicAddr, p.myNative)
	}
	p.pgTLS = p.router.Handle([]string{proxy.ALPNPostgres, proxy.ALPNPostgresDirect}, proxy.Route{ClientAuth: requestClientCert})
	if cfg.Proxy.PostgresListen != "" {
		p.pgNative, err = net.Listen("tcp", cfg.Proxy.PostgresListen)
		if err != nil {
			return err
		}
		p.settings.PostgresAddr = publicAddrFor(cfg.Proxy.PostgresPublicAddr, p.publicAddr, p.pgNative)
	}
	return nil
}

// publicAddrFor is the address clients dial for a native listener: the
// configured one, or the listener's port on the proxy's public host.
func publicAddrFor(configured, publicAddr string, l net.Listener) string {
	if configured != "" {
		return configured
	}
	host, _, _ := net.SplitHostPort(publicAddr)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return net.JoinHostPort(host, port)
}

// runDatabases serves the database front ends until ctx is done.
func (p *proxyRole) runDatabases(ctx context.Context, errc chan<- error) {
	go func() { errc <- p.pg.ServeTLS(p.pgTLS) }()
	go func() { errc <- p.my.ServeTLS(p.myTLS) }()
	if p.myNative != nil {
		p.log.Info("MySQL listening", zap.String("addr", p.myNative.Addr().String()), zap.String("public_addr", p.settings.MySQLAddr))
		go func() { errc <- p.my.Serve(p.myNative) }()
	}
	if p.pgNative != nil {
		p.log.Info("PostgreSQL listening", zap.String("addr", p.pgNative.Addr().String()), zap.String("public_addr", p.settings.PostgresAddr))
		go func() { errc <- p.pg.Serve(p.pgNative) }()
	}
}

func (p *proxyRole) closeDatabases() {
	p.pg.Close()
	p.my.Close()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	p.audit.Close(ctx)
	p.api.Close()
}
