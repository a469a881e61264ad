package client_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// testClock is the Auth service's clock in tests, so that one-time codes
// can move to the next step without waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testCluster is a real Auth service on 127.0.0.1:0 with an embedded store.
type testCluster struct {
	srv   *auth.Server
	addr  string
	pin   string // the host CA's fingerprint
	admin *authclient.Client
	clock *testClock
}

func newTestCluster(t *testing.T, configure ...func(*auth.Config)) *testCluster {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Now()}
	cfg := auth.Config{Storage: st, ClusterName: "test", BcryptCost: bcrypt.MinCost, Clock: clock.Now}
	for _, f := range configure {
		f(&cfg)
	}
	srv, err := auth.New(ctx, cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, auth.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	idPath := filepath.Join(dir, auth.AdminIdentityFile)
	if err := srv.WriteAdminIdentity(idPath, time.Hour); err != nil {
		t.Fatal(err)
	}
	id, err := authclient.ReadIdentityFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := authclient.New(l.Addr().String(), authclient.WithTLSConfig(id.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return &testCluster{
		srv:   srv,
		addr:  l.Addr().String(),
		pin:   srv.Authority(ca.HostCA).Fingerprint(),
		admin: admin,
		clock: clock,
	}
}

// addUser creates a user with a password, or pending sign-up when password
// is empty (then it returns the sign-up token).
func (c *testCluster) addUser(t *testing.T, name, password string, roles ...string) string {
	t.Helper()
	resp, err := c.admin.CreateUser(context.Background(), authclient.CreateUserRequest{
		User: authclient.User{
			Name:   name,
			Roles:  roles,
			Traits: map[string][]string{"db_users": {name}, "db_names": {"app"}},
		},
		Password: password,
	})
	if err != nil {
		t.Fatalf("creating user %s: %v", name, err)
	}
	return resp.SignupToken
}
