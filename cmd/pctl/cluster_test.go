package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// testCluster is a real Auth service on 127.0.0.1:0 whose data dir holds
// the admin identity and address file, as on an Auth host.
type testCluster struct {
	srv     *auth.Server
	addr    string
	dataDir string
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	dataDir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dataDir, "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := auth.New(context.Background(), auth.Config{Storage: st, ClusterName: "test", BcryptCost: bcrypt.MinCost})
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
	if err := srv.WriteAdminIdentity(filepath.Join(dataDir, auth.AdminIdentityFile), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, auth.AddrFile), []byte(l.Addr().String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCluster{srv: srv, addr: l.Addr().String(), dataDir: dataDir}
}

func (c *testCluster) hostPin() string { return c.srv.Authority(ca.HostCA).Fingerprint() }

// pctl runs pctl in-process with the cluster's data dir in the
// environment.
func (c *testCluster) pctl(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{dataDirEnv: c.dataDir}
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), code
}

// mustPctl runs pctl and fails the test unless it succeeds.
func (c *testCluster) mustPctl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.pctl(t, stdin, args...)
	if code != 0 {
		t.Fatalf("pctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}
