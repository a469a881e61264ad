package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

const (
	version = auth.Version
	// shutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	shutdownTimeout = 10 * time.Second
	// adminRefresh is how often the admin identity file is rewritten.
	adminRefresh = 24 * time.Hour
)

func newLogger(cfg LogConfig, w io.Writer) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	if cfg.Level != "" {
		if err := level.Set(cfg.Level); err != nil {
			return nil, err
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.Format == "json" {
		enc = zapcore.NewJSONEncoder(encCfg)
	} else {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), nil
}

// role is one running part of the daemon. run blocks until ctx is done,
// then shuts the role down and returns; an error before that stops the
// daemon.
type role interface {
	run(ctx context.Context) error
}

// start prepares the enabled roles in dependency order (auth, proxy, db),
// runs them until ctx is done or one fails, and shuts them all down.
func start(ctx context.Context, cfg *Config, log *zap.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data_dir: %w", err)
	}
	var (
		roles []role
		local *authRole
		pxy   *proxyRole
	)
	defer func() {
		for _, r := range roles {
			if c, ok := r.(io.Closer); ok {
				c.Close()
			}
		}
	}()
	var diag *diagRole
	if cfg.DiagAddr != "" {
		d, err := prepareDiag(cfg.DiagAddr, log)
		if err != nil {
			return err
		}
		roles = append(roles, d)
		diag = d
	}
	if cfg.Auth.Enabled {
		a, err := prepareAuth(ctx, cfg, log)
		if err != nil {
			return err
		}
		roles = append(roles, a)
		local = a
	}
	if cfg.Proxy.Enabled {
		p, err := prepareProxy(ctx, cfg, local, log)
		if err != nil {
			return err
		}
		roles = append(roles, p)
		pxy = p
	}
	if cfg.DB.Enabled {
		d, err := prepareDB(ctx, cfg, local, pxy, log)
		if err != nil {
			return err
		}
		roles = append(roles, d)
		if diag != nil {
			diag.checks = append(diag.checks, readiness{role: "db", ready: d.ready})
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for _, r := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(ctx); err != nil && ctx.Err() == nil {
				once.Do(func() { firstErr = err })
				cancel()
			}
		}()
	}
	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	return firstErr
}

// authRole is the Auth service.
type authRole struct {
	cfg    *Config
	log    *zap.Logger
	store  *boltstore.Store
	audit  *audit.FileLog
	srv    *auth.Server
	l      net.Listener
	idPath string
}

func prepareAuth(ctx context.Context, cfg *Config, log *zap.Logger) (*authRole, error) {
	a := &authRole{cfg: cfg, log: log}
	var err error
	a.store, err = boltstore.Open(filepath.Join(cfg.DataDir, "state.db"), boltstore.Options{})
	if err != nil {
		return nil, err
	}
	durability := audit.SyncBatch
	if cfg.Auth.Audit.Durability == "sync" {
		durability = audit.SyncEachEvent
	}
	a.audit, err = audit.NewFileLog(audit.FileLogConfig{
		Dir:        cfg.Auth.Audit.Dir,
		Durability: durability,
		Logger:     log.Named("audit"),
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	dns, ips := splitAddrs(append(append([]string(nil), cfg.Auth.PublicAddrs...), cfg.Auth.Listen))
	if h, err := os.Hostname(); err == nil {
		dns = append(dns, h)
	}
	a.srv, err = auth.New(ctx, auth.Config{
		Storage:      a.store,
		ClusterName:  cfg.ClusterName,
		Emitter:      a.audit,
		Logger:       log,
		DNSNames:     dns,
		IPAddresses:  ips,
		UserCertTTL:  cfg.Auth.UserCertTTL,
		SecondFactor: cfg.Auth.SecondFactor,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.l, err = net.Listen("tcp", cfg.Auth.Listen)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("auth.listen: %w", err)
	}
	if err := ca.WriteFileAtomic(filepath.Join(cfg.DataDir, auth.AddrFile), []byte(a.addr()+"\n"), 0o600); err != nil {
		a.Close()
		return nil, err
	}
	a.idPath = filepath.Join(cfg.DataDir, auth.AdminIdentityFile)
	if err := a.srv.WriteAdminIdentity(a.idPath, auth.AdminIdentityTTL); err != nil {
		a.Close()
		return nil, fmt.Errorf("writing the admin identity: %w", err)
	}
	return a, nil
}

// addr is where the API listens, as a dialable address.
func (a *authRole) addr() string {
	host, port, _ := net.SplitHostPort(a.l.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (a *authRole) run(ctx context.Context) error {
	a.log.Info("auth service listening", zap.String("addr", a.addr()), zap.String("cluster", a.srv.ClusterName()),
		zap.String("host_ca_pin", a.srv.Authority(ca.HostCA).Fingerprint()), zap.String("admin_identity", a.idPath))
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.l) }()
	tick := time.NewTicker(adminRefresh)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			if err := a.srv.WriteAdminIdentity(a.idPath, auth.AdminIdentityTTL); err != nil {
				a.log.Error("failed to refresh the admin identity", zap.Error(err))
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := a.srv.Shutdown(sctx); err != nil {
				a.log.Warn("graceful shutdown did not finish; closing", zap.Error(err))
				a.srv.Close()
			}
			if err := <-errc; !errors.Is(err, auth.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
}

func (a *authRole) Close() error {
	if a.srv != nil {
		a.srv.Close()
	}
	if a.l != nil {
		a.l.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	return nil
}

// splitAddrs splits host[:port] strings into DNS names and IP addresses,
// dropping unspecified addresses.
func splitAddrs(addrs []string) (dns []string, ips []net.IP) {
	for _, a := range addrs {
		host := a
		if h, _, err := net.SplitHostPort(a); err == nil {
			host = h
		}
		if host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
		} else {
			dns = append(dns, host)
		}
	}
	return dns, ips
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
