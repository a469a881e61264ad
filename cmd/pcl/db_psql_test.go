package main

import (
	"crypto"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// TestDBConnectRealPsql runs the real psql with the command line, the
// environment and the files pcl makes. Until the proxy serves PostgreSQL,
// a real PostgreSQL stands where the proxy's listener will: it presents a
// certificate from the cluster's host CA (as the proxy will) and trusts the
// cluster's user CA for client certificates, so the route certificate and
// the login's key log in as they are. A fake proxy API tells pcl its
// address in the ping.
func TestDBConnectRealPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		if os.Getenv(dbtest.RequireEnv) == "1" {
			t.Fatalf("psql is not installed (Debian package postgresql-client); %s=1 requires it", dbtest.RequireEnv)
		}
		t.Skip("psql is not installed (Debian package postgresql-client)")
	}
	c := newDBCluster(t)
	// A profile path that needs quoting in conninfo and in the shell.
	c.home = filepath.Join(t.TempDir(), "pcl home's")

	// The proxy's host certificate, as the proxy's listener would present.
	proxyCert := c.ProxyCertificate(t)
	prefix := filepath.Join(t.TempDir(), "server")
	userCAs := []*x509.Certificate{c.Server.Authority(ca.UserCA).Cert}
	if err := ca.WriteDatabaseServerFiles(prefix, proxyCert.Leaf.Raw, proxyCert.PrivateKey.(crypto.Signer), userCAs); err != nil {
		t.Fatal(err)
	}
	pg := dbtest.StartPostgres(t, dbtest.Options{CertPrefix: prefix, Users: []string{"alice"}, Databases: []string{"app"}})
	proxyAddr := c.StartFakeProxy(t, &authclient.ProxySettings{PostgresAddr: pg.Addr()})
	c.loginAs(t, proxyAddr, "alice")

	realExec := func(a *app) { a.runClient, a.lookPath = runClient, exec.LookPath }
	out, errOut, code := c.pclWith(t, realExec, "db", "connect", "pg-dev", "--", "-At", "-c", "select current_user || ' ' || current_database()")
	if code != 0 || out != "alice app\n" {
		t.Fatalf("db connect: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// psql's own errors and exit code come through untouched.
	out, errOut, code = c.pclWith(t, realExec, "db", "connect", "pg-dev", "--", "-At", "-v", "ON_ERROR_STOP=1", "-c", "select 1/0")
	if code != 1 || out != "" || !strings.Contains(errOut, "division by zero") || strings.Contains(errOut, "error: ") ||
		strings.Contains(errOut, "note: ") {
		t.Errorf("db connect with a failing statement: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// What db env and db config --format cmd print works in a shell.
	sh := func(script string, args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("sh -c %q: %v\n%s", script, err, got)
		}
		return string(got)
	}
	env := c.mustPcl(t, "", "db", "env", "pg-dev")
	if got := sh(`eval "$1" && exec psql -At -c "select current_user || ' ' || current_database()"`, env); got != "alice app\n" {
		t.Errorf("psql with the environment of db env printed %q", got)
	}
	cmdLine := strings.TrimSuffix(c.mustPcl(t, "", "db", "config", "pg-dev", "--format", "cmd"), "\n")
	if got := sh(cmdLine + ` -At -c "select 42"`); got != "42\n" {
		t.Errorf("%s printed %q", cmdLine, got)
	}
}
