package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net"
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

// fakeClock starts at the real time so that TLS, which checks certificates
// against the real clock, still accepts what the service signs.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder keeps audit events in memory.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) EmitAuditEvent(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) ofType(typ string) []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Event
	for _, e := range r.events {
		if e.GetMetadata().Type == typ {
			out = append(out, e)
		}
	}
	return out
}

type testCluster struct {
	srv   *auth.Server
	addr  string
	clock *fakeClock
	audit *recorder
	admin *authclient.Client
	dir   string
}

func newTestCluster(t *testing.T, mutate ...func(*auth.Config)) *testCluster {
	t.Helper()
	dir := t.TempDir()
	clock := &fakeClock{now: time.Now()}
	st, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	cfg := auth.Config{
		Storage:     st,
		ClusterName: "test",
		Emitter:     rec,
		Clock:       clock.Now,
		BcryptCost:  bcrypt.MinCost,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != auth.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	tc := &testCluster{srv: srv, addr: l.Addr().String(), clock: clock, audit: rec, dir: dir}
	idPath := filepath.Join(dir, auth.AdminIdentityFile)
	if err := srv.WriteAdminIdentity(idPath, time.Hour); err != nil {
		t.Fatal(err)
	}
	f, err := authclient.ReadIdentityFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	tc.admin = tc.client(t, f.TLSConfig())
	return tc
}

func (tc *testCluster) client(t *testing.T, cfg *tls.Config) *authclient.Client {
	t.Helper()
	c, err := authclient.New(tc.addr, authclient.WithTLSConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// anon is a client with no certificate that verifies the server.
func (tc *testCluster) anon(t *testing.T) *authclient.Client {
	return tc.client(t, authclient.TLSConfig(nil, []*x509.Certificate{tc.srv.Authority(ca.HostCA).Cert}))
}

func (tc *testCluster) addUser(t *testing.T, name, password string, roles []string, traits map[string][]string) {
	t.Helper()
	_, err := tc.admin.CreateUser(context.Background(), authclient.CreateUserRequest{
		User:     authclient.User{Name: name, Roles: roles, Traits: traits},
		Password: password,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// login logs in and returns a client that presents the user certificate.
func (tc *testCluster) login(t *testing.T, name, password, otp string) (*authclient.Client, *authclient.LoginResponse, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tc.anon(t).Login(context.Background(), authclient.LoginRequest{Username: name, Password: password, OTP: otp, PublicKey: pub})
	if err != nil {
		t.Fatalf("login as %s: %v", name, err)
	}
	return tc.userClient(t, resp.Cert, key), resp, key
}

func (tc *testCluster) userClient(t *testing.T, certPEM string, key *ecdsa.PrivateKey) *authclient.Client {
	t.Helper()
	cert, err := ca.ParseCertPEM([]byte(certPEM))
	if err != nil {
		t.Fatal(err)
	}
	tlsCert := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	return tc.client(t, authclient.TLSConfig(tlsCert, []*x509.Certificate{tc.srv.Authority(ca.HostCA).Cert}))
}

func publicKeyPEM(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}
