package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// testClock is the Auth service's clock, so that one-time codes can move
// to the next step without waiting.
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

// testCluster is a real Auth service on 127.0.0.1:0; pcl talks to it as
// it would to a proxy that forwards the API.
type testCluster struct {
	srv   *auth.Server
	addr  string
	pin   string
	admin *authclient.Client
	clock *testClock
	home  string // the user's PORTCULLIS_HOME
}

func newTestCluster(t *testing.T, secondFactor string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Now()}
	srv, err := auth.New(context.Background(), auth.Config{
		Storage: st, ClusterName: "test", BcryptCost: bcrypt.MinCost, Clock: clock.Now, SecondFactor: secondFactor,
	})
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
		home:  filepath.Join(t.TempDir(), "portcullis-home"),
	}
}

// addUser creates a user with a password, or pending sign-up when password
// is empty (then it returns the sign-up token).
func (c *testCluster) addUser(t *testing.T, name, password string) string {
	t.Helper()
	resp, err := c.admin.CreateUser(context.Background(), authclient.CreateUserRequest{
		User: authclient.User{
			Name:   name,
			Roles:  []string{"access"},
			Traits: map[string][]string{"db_users": {name}, "db_names": {"app"}},
		},
		Password: password,
	})
	if err != nil {
		t.Fatalf("creating user %s: %v", name, err)
	}
	return resp.SignupToken
}

// pcl runs pcl in-process with the cluster's user home.
func (c *testCluster) pcl(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (errOut string, code int) {
	t.Helper()
	env := map[string]string{"PORTCULLIS_HOME": c.home}
	var e bytes.Buffer
	code = run(context.Background(), args, stdin, stdout, &e, func(k string) string { return env[k] })
	return e.String(), code
}

// pclText runs pcl with stdin text and returns its output.
func (c *testCluster) pclText(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out bytes.Buffer
	errOut, code := c.pcl(t, strings.NewReader(stdin), &out, args...)
	return out.String(), errOut, code
}

// mustPcl runs pcl and fails the test unless it succeeds.
func (c *testCluster) mustPcl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.pclText(t, stdin, args...)
	if code != 0 {
		t.Fatalf("pcl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}
