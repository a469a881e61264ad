package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

// testCluster is a real Auth service on 127.0.0.1:0; pcl talks to it as
// it would to a proxy that forwards the API.
type testCluster struct {
	*authtest.Cluster
	home string // the user's PORTCULLIS_HOME
}

func newTestCluster(t *testing.T, secondFactor string) *testCluster {
	t.Helper()
	c := authtest.Start(t, authtest.WithConfig(func(cfg *auth.Config) { cfg.SecondFactor = secondFactor }))
	return &testCluster{Cluster: c, home: filepath.Join(t.TempDir(), "portcullis-home")}
}

// addUser creates a user with the access role, db user name and db name
// app, and a password, or pending sign-up when password is empty (then it
// returns the sign-up token).
func (c *testCluster) addUser(t *testing.T, name, password string) string {
	t.Helper()
	return c.AddUser(t, name, password, []string{"access"}, map[string][]string{"db_users": {name}, "db_names": {"app"}})
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

// pclWith runs pcl in-process with the cluster's user home after
// configure has adjusted the app (its program lookup, its runner of
// database clients, its clock). By default running a database client
// fails the test.
func (c *testCluster) pclWith(t *testing.T, configure func(*app), args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{"PORTCULLIS_HOME": c.home}
	var out, errOut bytes.Buffer
	a := newApp(strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	a.runClient = func(cmd *exec.Cmd) (int, error) {
		t.Errorf("pcl %s ran %q", strings.Join(args, " "), cmd.Args)
		return 1, nil
	}
	if configure != nil {
		configure(a)
	}
	code = a.execute(context.Background(), args)
	return out.String(), errOut.String(), code
}
