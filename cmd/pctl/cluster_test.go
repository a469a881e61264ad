package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/internal/authtest"
)

// testCluster is a real Auth service on 127.0.0.1:0 whose data dir holds
// the admin identity and address file, as on an Auth host.
type testCluster struct{ *authtest.Cluster }

func newTestCluster(t *testing.T, opts ...authtest.Option) *testCluster {
	t.Helper()
	return &testCluster{authtest.Start(t, opts...)}
}

// pctl runs pctl in-process with the cluster's data dir in the
// environment.
func (c *testCluster) pctl(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{dataDirEnv: c.Dir}
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
