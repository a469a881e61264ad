package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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

// start runs the enabled roles until ctx is done, then shuts them down.
func start(ctx context.Context, cfg *Config, log *zap.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data_dir: %w", err)
	}
	if !cfg.Auth.Enabled {
		return errors.New("only the auth role is available in this version")
	}
	return runAuth(ctx, cfg, log)
}

func runAuth(ctx context.Context, cfg *Config, log *zap.Logger) error {
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "state.db"), boltstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	durability := audit.SyncBatch
	if cfg.Auth.Audit.Durability == "sync" {
		durability = audit.SyncEachEvent
	}
	auditLog, err := audit.NewFileLog(audit.FileLogConfig{
		Dir:        cfg.Auth.Audit.Dir,
		Durability: durability,
		Logger:     log.Named("audit"),
	})
	if err != nil {
		return fmt.Errorf("opening the audit log: %w", err)
	}
	defer auditLog.Close()

	var dns []string
	var ips []net.IP
	for _, a := range cfg.Auth.PublicAddrs {
		host := a
		if h, _, err := net.SplitHostPort(a); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, host)
		}
	}
	if host, _, _ := net.SplitHostPort(cfg.Auth.Listen); host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	if h, err := os.Hostname(); err == nil {
		dns = append(dns, h)
	}

	srv, err := auth.New(ctx, auth.Config{
		Storage:      st,
		ClusterName:  cfg.ClusterName,
		Emitter:      auditLog,
		Logger:       log,
		DNSNames:     dns,
		IPAddresses:  ips,
		UserCertTTL:  cfg.Auth.UserCertTTL,
		SecondFactor: cfg.Auth.SecondFactor,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Auth.Listen)
	if err != nil {
		return fmt.Errorf("auth.listen: %w", err)
	}
	addr := l.Addr().String()
	if err := ca.WriteFileAtomic(filepath.Join(cfg.DataDir, auth.AddrFile), []byte(addr+"\n"), 0o600); err != nil {
		l.Close()
		return err
	}
	idPath := filepath.Join(cfg.DataDir, auth.AdminIdentityFile)
	if err := srv.WriteAdminIdentity(idPath, auth.AdminIdentityTTL); err != nil {
		l.Close()
		return fmt.Errorf("writing the admin identity: %w", err)
	}
	log.Info("auth service listening", zap.String("addr", addr), zap.String("cluster", srv.ClusterName()),
		zap.String("host_ca_pin", srv.Authority(ca.HostCA).Fingerprint()), zap.String("admin_identity", idPath))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	tick := time.NewTicker(adminRefresh)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			if err := srv.WriteAdminIdentity(idPath, auth.AdminIdentityTTL); err != nil {
				log.Error("failed to refresh the admin identity", zap.Error(err))
			}
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("graceful shutdown did not finish; closing", zap.Error(err))
				srv.Close()
			}
			if err := <-errc; !errors.Is(err, auth.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
}
