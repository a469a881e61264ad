// Package authtest starts a real in-process Auth service for tests: an
// embedded store in a temporary data dir, the HTTPS API on 127.0.0.1:0, a
// fake clock and an in-memory audit recorder, with clients for the admin
// identity, anonymous callers, logged-in users and joined hosts. It also
// has a stand-in for the proxy's API in front of the service.
//
// Everything it starts is stopped by t.Cleanup, so tests that check for
// leaked goroutines pass.
package authtest

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// ClusterName is the name of every cluster Start makes.
const ClusterName = "test"

// A Cluster is a running Auth service.
type Cluster struct {
	// Server is the service.
	Server *auth.Server
	// Addr is the host:port its API listens on.
	Addr string
	// Dir is its data dir, laid out as on an Auth host: the store
	// (state.db), the admin identity (auth.AdminIdentityFile) and the
	// address file (auth.AddrFile); with WithAuditLog also the audit log
	// (audit/).
	Dir string
	// Clock is the service's and the store's clock.
	Clock *Clock
	// Audit records the service's audit events, unless an option replaced
	// auth.Config.Emitter.
	Audit *Recorder
	// AuditLog is the searchable audit log with WithAuditLog, else nil.
	AuditLog *audit.FileLog

	admin *authclient.Client

	mu     sync.Mutex
	agents []advertised // what Advertise started
}

// An Option changes how Start configures the service.
type Option func(*options)

type options struct {
	auditLog  bool
	configure []func(*auth.Config)
}

// WithConfig lets configure change the service's configuration after
// Start has filled it in (Storage, ClusterName, Emitter, Clock, and
// BcryptCost at bcrypt.MinCost, so that test logins are fast).
func WithConfig(configure func(*auth.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, configure) }
}

// WithAuditLog writes the service's audit events also to an audit.FileLog
// in Dir/audit, fsynced per event, that serves audit searches.
func WithAuditLog() Option {
	return func(o *options) { o.auditLog = true }
}

// Start starts an Auth service for cluster ClusterName and stops it when
// the test ends. It writes the admin identity and the address file into
// Dir, as the daemon does.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{Dir: t.TempDir(), Clock: NewClock(time.Now()), Audit: &Recorder{}}
	st, err := boltstore.Open(filepath.Join(c.Dir, "state.db"), boltstore.Options{Clock: c.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := auth.Config{
		Storage:     st,
		ClusterName: ClusterName,
		Emitter:     c.Audit,
		Clock:       c.Clock.Now,
		BcryptCost:  bcrypt.MinCost,
	}
	if o.auditLog {
		c.AuditLog, err = audit.NewFileLog(audit.FileLogConfig{Dir: filepath.Join(c.Dir, "audit"), Durability: audit.SyncEachEvent})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.AuditLog.Close() })
		cfg.Emitter = audit.MultiEmitter{c.Audit, c.AuditLog}
		cfg.AuditSearcher = c.AuditLog
	}
	for _, configure := range o.configure {
		configure(&cfg)
	}
	c.Server, err = auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Addr = l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- c.Server.Serve(l) }()
	t.Cleanup(func() {
		c.Server.Close()
		if err := <-served; !errors.Is(err, auth.ErrServerClosed) {
			t.Errorf("Serve returned %v, want auth.ErrServerClosed", err)
		}
	})

	idPath := filepath.Join(c.Dir, auth.AdminIdentityFile)
	if err := c.Server.WriteAdminIdentity(idPath, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, auth.AddrFile), []byte(c.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := authclient.ReadIdentityFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	c.admin = c.Client(t, id.TLSConfig())
	return c
}

// Admin returns a client that presents the admin identity, which may do
// everything.
func (c *Cluster) Admin() *authclient.Client { return c.admin }

// HostCAs returns the certificates that verify the service: its host CA.
func (c *Cluster) HostCAs() []*x509.Certificate {
	return []*x509.Certificate{c.Server.Authority(ca.HostCA).Cert}
}

// HostPin returns the host CA's fingerprint, the pin clients and hosts
// are given to trust the cluster.
func (c *Cluster) HostPin() string { return c.Server.Authority(ca.HostCA).Fingerprint() }

// Client returns a client of the service with cfg; it is closed when the
// test ends.
func (c *Cluster) Client(t testing.TB, cfg *tls.Config) *authclient.Client {
	t.Helper()
	cl, err := authclient.New(c.Addr, authclient.WithTLSConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// Anon returns a client without a certificate that verifies the service
// against its host CA.
func (c *Cluster) Anon(t testing.TB) *authclient.Client {
	t.Helper()
	return c.Client(t, authclient.TLSConfig(nil, c.HostCAs()))
}

// CertClient returns a client that presents certPEM (a user, route or host
// certificate the service issued for key).
func (c *Cluster) CertClient(t testing.TB, certPEM string, key crypto.Signer) *authclient.Client {
	t.Helper()
	return c.Client(t, authclient.TLSConfig(TLSCertificate(t, certPEM, key), c.HostCAs()))
}
