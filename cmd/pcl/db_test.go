package main

import (
	"crypto/ecdsa"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

// newDBCluster is a cluster with the dev-only role (authtest.DevOnlyRole), alice (db user alice,
// db name app), bob (db users a and b, db name app) and three databases
// from two agents, pg-prod outside alice's role.
func newDBCluster(t *testing.T) *testCluster {
	t.Helper()
	c := newTestCluster(t, "")
	c.AddRole(t, authtest.DevOnlyRole)
	c.AddUser(t, "alice", password, []string{"dev-only"}, map[string][]string{"db_users": {"alice"}, "db_names": {"app"}})
	c.AddUser(t, "bob", password, []string{"dev-only"}, map[string][]string{"db_users": {"a", "b"}, "db_names": {"app"}})
	c.Advertise(t, "agent-1",
		authclient.Database{Name: "pg-dev", Protocol: "postgres", Labels: map[string]string{"env": "dev", "team": "a"},
			Description: "the dev database"},
		authclient.Database{Name: "pg-prod", Protocol: "postgres", Labels: map[string]string{"env": "prod"}},
	)
	c.Advertise(t, "agent-2",
		authclient.Database{Name: "pg-dev", Protocol: "postgres", Labels: map[string]string{"env": "dev", "team": "a"},
			Description: "the dev database"},
		authclient.Database{Name: "my-dev", Protocol: "mysql", Labels: map[string]string{"env": "dev"}},
	)
	return c
}

func (c *testCluster) loginAs(t *testing.T, addr, user string) *client.Profile {
	t.Helper()
	c.mustPcl(t, password+"\n", "login", "--proxy", addr, "--user", user, "--password-stdin", "--ca-pin", c.HostPin())
	p, err := client.LoadProfile(c.home)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// routeOf decodes the route certificate of db in the profile.
func routeOf(t *testing.T, p *client.Profile, db string) (*ca.Identity, []byte) {
	t.Helper()
	data, err := os.ReadFile(p.DatabaseCertPath(db))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ParseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	return id, data
}

func TestDBList(t *testing.T) {
	c := newDBCluster(t)
	c.loginAs(t, c.Addr, "alice")
	want := "NAME    PROTOCOL  LABELS          DESCRIPTION\n" +
		"my-dev  mysql     env=dev\n" +
		"pg-dev  postgres  env=dev,team=a  the dev database\n"
	if out := c.mustPcl(t, "", "db", "ls"); out != want {
		t.Errorf("db ls printed\n%s\nwant\n%s", out, want)
	}
	wantJSON := `[
  {
    "name": "my-dev",
    "protocol": "mysql",
    "labels": {
      "env": "dev"
    },
    "description": ""
  },
  {
    "name": "pg-dev",
    "protocol": "postgres",
    "labels": {
      "env": "dev",
      "team": "a"
    },
    "description": "the dev database"
  }
]
`
	if out := c.mustPcl(t, "", "db", "ls", "--format", "json"); out != wantJSON {
		t.Errorf("db ls --format json printed\n%s", out)
	}

	// Databases logged in to are marked.
	c.mustPcl(t, "", "db", "login", "pg-dev")
	want = "NAME                             PROTOCOL  LABELS          DESCRIPTION\n" +
		"my-dev                           mysql     env=dev\n" +
		"> pg-dev (user: alice, db: app)  postgres  env=dev,team=a  the dev database\n"
	if out := c.mustPcl(t, "", "db", "ls"); out != want {
		t.Errorf("db ls after db login printed\n%s\nwant\n%s", out, want)
	}

	if _, errOut, code := c.pclText(t, "", "db", "ls", "--format", "yaml"); code != 1 ||
		errOut != "error: --format \"yaml\" is not one of text, json\n" {
		t.Errorf("db ls --format yaml: exit %d, %q", code, errOut)
	}
}

func TestDBLoginConfigEnvLogout(t *testing.T) {
	c := newDBCluster(t)
	p := c.loginAs(t, c.Addr, "alice")

	if _, errOut, code := c.pclText(t, "", "db", "config", "pg-dev"); code != 1 ||
		errOut != "error: not logged in to database \"pg-dev\"; run pcl db login pg-dev first\n" {
		t.Errorf("db config before db login: exit %d, %q", code, errOut)
	}

	out := c.mustPcl(t, "", "db", "login", "pg-dev")
	if !strings.HasPrefix(out, "Logged in to database pg-dev (postgres) as db user alice, db name app.\nThe certificate is valid until ") ||
		!strings.HasSuffix(out, ").\nConnect with: pcl db connect pg-dev\n") {
		t.Errorf("db login printed %q", out)
	}
	id, certPEM := routeOf(t, p, "pg-dev")
	if want := (ca.Route{ServiceName: "pg-dev", Protocol: "postgres", DBUser: "alice", DBName: "app"}); id.Route == nil || *id.Route != want ||
		id.Username != "alice" || id.Kind != ca.KindUser {
		t.Errorf("route certificate identity %+v route %+v", id, id.Route)
	}
	cert, _ := ca.ParseCertPEM(certPEM)
	userCert, err := p.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(userCert.PublicKey) {
		t.Errorf("the route certificate is not signed for the login's key")
	}
	if err := cert.CheckSignatureFrom(c.Server.Authority(ca.UserCA).Cert); err != nil {
		t.Errorf("the route certificate is not signed by the user CA: %v", err)
	}

	// Straight at the Auth service the address logged in to is a guess.
	conninfo := "host=127.0.0.1 port=" + portOf(c.Addr) + " user=alice dbname=app sslmode=verify-full sslrootcert=" + p.HostCAsPath() +
		" sslcert=" + p.DatabaseCertPath("pg-dev") + " sslkey=" + p.KeyPath()
	cmdLine := "psql '" + conninfo + "'"
	want := "Name:      pg-dev\n" +
		"Protocol:  postgres\n" +
		"Host:      127.0.0.1\n" +
		"Port:      " + portOf(c.Addr) + "\n" +
		"DB user:   alice\n" +
		"DB name:   app\n" +
		"CA:        " + p.HostCAsPath() + "\n" +
		"Cert:      " + p.DatabaseCertPath("pg-dev") + "\n" +
		"Key:       " + p.KeyPath() + "\n" +
		"Expires:   " + cert.NotAfter.UTC().Format(time.RFC3339) + "\n" +
		"Command:   " + cmdLine + "\n" +
		"Note:      the cluster did not say where its proxy serves postgres, so " + c.Addr +
		" (the address logged in to) was used; if that is an Auth service rather than a proxy, log in through the proxy (pcl login --proxy PROXY:PORT)\n"
	if out := c.mustPcl(t, "", "db", "config", "pg-dev"); out != want {
		t.Errorf("db config printed\n%s\nwant\n%s", out, want)
	}
	if out := c.mustPcl(t, "", "db", "config", "pg-dev", "--format", "cmd"); out != cmdLine+"\n" {
		t.Errorf("db config --format cmd printed\n%s\nwant\n%s", out, cmdLine)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(c.mustPcl(t, "", "db", "config", "pg-dev", "--format", "json")), &got); err != nil {
		t.Fatal(err)
	}
	wantJSON := map[string]any{
		"name": "pg-dev", "protocol": "postgres", "host": "127.0.0.1", "port": float64(mustAtoi(t, portOf(c.Addr))),
		"db_user": "alice", "db_name": "app", "ca_file": p.HostCAsPath(), "cert_file": p.DatabaseCertPath("pg-dev"),
		"key_file": p.KeyPath(), "expires": cert.NotAfter.UTC().Format(time.RFC3339), "addr_guessed": true, "command": cmdLine,
	}
	if len(got) != len(wantJSON) {
		t.Errorf("db config --format json printed %v", got)
	}
	for k, v := range wantJSON {
		if got[k] != v {
			t.Errorf("db config --format json: %s = %v, want %v", k, got[k], v)
		}
	}

	wantEnv := "export PGHOST=127.0.0.1 PGPORT=" + portOf(c.Addr) + " PGUSER=alice PGDATABASE=app PGSSLMODE=verify-full PGSSLROOTCERT=" +
		p.HostCAsPath() + " PGSSLCERT=" + p.DatabaseCertPath("pg-dev") + " PGSSLKEY=" + p.KeyPath() + "\n"
	if out := c.mustPcl(t, "", "db", "env", "pg-dev"); out != wantEnv {
		t.Errorf("db env printed\n%s\nwant\n%s", out, wantEnv)
	}

	c.mustPcl(t, "", "db", "login", "my-dev")
	if _, errOut, code := c.pclText(t, "", "db", "env", "my-dev"); code != 1 || !strings.Contains(errOut, "only PostgreSQL clients") {
		t.Errorf("db env of a MySQL database: exit %d, %q", code, errOut)
	}
	if out := c.mustPcl(t, "", "db", "logout", "pg-dev"); out != "Logged out of database pg-dev.\n" {
		t.Errorf("db logout pg-dev printed %q", out)
	}
	if _, err := os.Stat(p.DatabaseCertPath("pg-dev")); err == nil {
		t.Errorf("db logout left %s", p.DatabaseCertPath("pg-dev"))
	}
	if _, errOut, code := c.pclText(t, "", "db", "logout", "pg-dev"); code != 1 ||
		errOut != "error: not logged in to database \"pg-dev\"; nothing to log out of\n" {
		t.Errorf("db logout twice: exit %d, %q", code, errOut)
	}
	if out := c.mustPcl(t, "", "db", "logout"); out != "Logged out of database my-dev.\n" {
		t.Errorf("db logout printed %q", out)
	}
	if _, err := os.Stat(p.DatabaseCertPath("my-dev")); err == nil {
		t.Errorf("db logout left %s", p.DatabaseCertPath("my-dev"))
	}
	if out := c.mustPcl(t, "", "db", "logout"); out != "Not logged in to any database.\n" {
		t.Errorf("db logout with none printed %q", out)
	}
}

func TestDBLoginErrors(t *testing.T) {
	c := newDBCluster(t)
	c.loginAs(t, c.Addr, "alice")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"db", "login", "pg-dev", "--db-user", "root"},
			`access to database "pg-dev" as db user "root" with db name "app" denied: no role allows db user "root" on database "pg-dev" (allowed: alice)`},
		{[]string{"db", "login", "pg-prod"},
			`database "pg-prod" is unknown, offline or not allowed by your roles; pcl db ls lists the databases you can reach`},
		{[]string{"db", "login"}, `name the database; usage: pcl db login NAME [--db-user USER] [--db-name DB] [flags] (pcl db ls lists them)`},
		{[]string{"db", "login", "a", "b"}, `pcl db login takes one database name, got ["a" "b"]; usage: pcl db login NAME [--db-user USER] [--db-name DB] [flags]`},
		{[]string{"db", "connect", "pg-dev", "--db-user", "root"},
			`access to database "pg-dev" as db user "root" with db name "app" denied: no role allows db user "root" on database "pg-dev" (allowed: alice)`},
	} {
		out, errOut, code := c.pclText(t, "", tc.args...)
		if code != 1 || out != "" || errOut != "error: "+tc.want+"\n" {
			t.Errorf("pcl %s: exit %d, stdout %q, stderr %q\nwant %s", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}

	c.loginAs(t, c.Addr, "bob")
	if _, errOut, code := c.pclText(t, "", "db", "login", "pg-dev"); code != 1 ||
		errOut != "error: choose the db user for database \"pg-dev\" with --db-user; your login allows: a, b\n" {
		t.Errorf("db login with two db users: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.pclText(t, "", "db", "ls"); code != 0 || errOut != "" {
		t.Errorf("db ls as bob: exit %d, %q", code, errOut)
	}
}

// recorder is an injected runner of database clients.
type recorder struct {
	cmds []*exec.Cmd
	code int
}

func (r *recorder) run(cmd *exec.Cmd) (int, error) {
	r.cmds = append(r.cmds, cmd)
	return r.code, nil
}

// lookIn finds programs only among the files in dir.
func lookIn(dir string) func(string) (string, error) {
	return func(name string) (string, error) {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			return "", exec.ErrNotFound
		}
		return path, nil
	}
}

func TestDBConnectRunsPsql(t *testing.T) {
	c := newDBCluster(t)
	p := c.loginAs(t, c.Addr, "bob")
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "psql"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	with := func(a *app) {
		a.lookPath = lookIn(bin)
		a.runClient = rec.run
	}

	// No route yet: connect logs in first, with the flags given, and
	// passes the arguments after -- through.
	out, errOut, code := c.pclWith(t, with, "db", "connect", "pg-dev", "--db-user", "a", "--", "-c", "select 1", "--csv")
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("db connect: exit %d, %q, %q", code, out, errOut)
	}
	if id, _ := routeOf(t, p, "pg-dev"); id.Route.DBUser != "a" || id.Route.DBName != "app" {
		t.Errorf("db connect logged in as %+v", id.Route)
	}
	conninfo := "host=127.0.0.1 port=" + portOf(c.Addr) + " user=a dbname=app sslmode=verify-full sslrootcert=" + p.HostCAsPath() +
		" sslcert=" + p.DatabaseCertPath("pg-dev") + " sslkey=" + p.KeyPath()
	if len(rec.cmds) != 1 {
		t.Fatalf("ran %d commands", len(rec.cmds))
	}
	cmd := rec.cmds[0]
	if cmd.Path != filepath.Join(bin, "psql") || !slices.Equal(cmd.Args, []string{"psql", conninfo, "-c", "select 1", "--csv"}) {
		t.Errorf("ran %s %q", cmd.Path, cmd.Args)
	}
	if cmd.Stdin == nil || cmd.Stdout == nil || cmd.Stderr == nil {
		t.Errorf("the streams are not attached")
	}

	// Connecting again reuses the route: the flags default to its.
	_, before := routeOf(t, p, "pg-dev")
	if _, errOut, code := c.pclWith(t, with, "db", "connect", "pg-dev"); code != 0 {
		t.Fatalf("db connect again: exit %d, %q", code, errOut)
	}
	if _, after := routeOf(t, p, "pg-dev"); string(after) != string(before) {
		t.Errorf("db connect without flags logged in again")
	}
	if got := rec.cmds[1].Args; !slices.Equal(got, []string{"psql", conninfo}) {
		t.Errorf("ran %q", got)
	}

	// Another db user: a new route certificate.
	if _, errOut, code := c.pclWith(t, with, "db", "connect", "pg-dev", "--db-user", "b"); code != 0 {
		t.Fatalf("db connect as b: exit %d, %q", code, errOut)
	}
	if id, _ := routeOf(t, p, "pg-dev"); id.Route.DBUser != "b" {
		t.Errorf("db connect --db-user b kept %+v", id.Route)
	}

	// psql's exit code is pcl's; the guessed address is pointed out.
	rec.code = 2
	out, errOut, code = c.pclWith(t, with, "db", "connect", "pg-dev")
	if code != 2 || out != "" || !strings.HasPrefix(errOut, "note: the cluster did not say where its proxy serves postgres") ||
		strings.Contains(errOut, "error:") {
		t.Errorf("db connect with psql failing: exit %d, %q, %q", code, out, errOut)
	}

	// A new login (a new key) makes the route certificate stale: connect
	// gets a new one.
	rec.code = 0
	c.mustPcl(t, password+"\n", "login", "--password-stdin", "--ttl", "24h")
	p, err := client.LoadProfile(c.home)
	if err != nil {
		t.Fatal(err)
	}
	_, before = routeOf(t, p, "pg-dev")
	if _, errOut, code := c.pclWith(t, with, "db", "connect", "pg-dev"); code != 0 {
		t.Fatalf("db connect after a new login: exit %d, %q", code, errOut)
	}
	id, after := routeOf(t, p, "pg-dev")
	if string(after) == string(before) || id.Route.DBUser != "b" {
		t.Errorf("db connect after a new login kept the stale certificate (route %+v)", id.Route)
	}

	// An expired route certificate (12h, in a 24h login) is renewed.
	later := time.Now().Add(13 * time.Hour)
	c.Clock.Advance(13 * time.Hour)
	c.HeartbeatAgents(t)
	if _, errOut, code := c.pclWith(t, func(a *app) {
		with(a)
		a.now = func() time.Time { return later }
	}, "db", "connect", "pg-dev"); code != 0 {
		t.Fatalf("db connect after the route expired: exit %d, %q", code, errOut)
	}
	if _, renewed := routeOf(t, p, "pg-dev"); string(renewed) == string(after) {
		t.Errorf("db connect after the route expired kept it")
	}

	// An expired login cannot be renewed here.
	if _, errOut, code := c.pclWith(t, func(a *app) {
		with(a)
		a.now = func() time.Time { return p.Expires.Add(time.Minute) }
	}, "db", "connect", "pg-dev"); code != 1 || errOut != "error: your login as bob at "+c.Addr+" expired at "+
		p.Expires.UTC().Format(time.RFC3339)+"; log in again with pcl login\n" {
		t.Errorf("db connect after the login expired: exit %d, %q", code, errOut)
	}
	if len(rec.cmds) != 6 {
		t.Errorf("ran %d commands, want 6", len(rec.cmds))
	}
}

func TestDBConnectWithoutPsql(t *testing.T) {
	c := newDBCluster(t)
	c.loginAs(t, c.Addr, "alice")
	out, errOut, code := c.pclWith(t, func(a *app) { a.lookPath = lookIn(t.TempDir()) }, "db", "connect", "pg-dev", "--", "-c", "select 1")
	if code != 1 || out != "" || errOut !=
		"error: psql is not installed (not found on PATH); install the postgresql-client package, e.g. sudo apt-get install postgresql-client\n" {
		t.Errorf("db connect without psql: exit %d, %q, %q", code, out, errOut)
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
