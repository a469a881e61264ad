package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// pgCluster is a whole cluster in front of a real PostgreSQL: auth and
// proxy in one daemon, the agent in another that joined with a token, the
// database configured from the cluster's database CA, and alice logged in.
type pgCluster struct {
	admin   *authclient.Client
	pg      *dbtest.Postgres
	profile *client.Profile
	home    string
	cfg     *client.DatabaseConfig
	cluster *daemon
	agent   *daemon

	proxyAddr  string // the proxy's public (API and tunnel) port
	clusterDir string // the auth+proxy daemon's data directory
	pin        string // the host CA pin clients log in with
	alice      *pgUser
}

func startPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	ctx := context.Background()
	clusterDir := t.TempDir()
	proxyAddr, pgAddr := freeAddr(t), freeAddr(t)
	cluster := startDaemon(t, fmt.Sprintf(`
data_dir: %s
cluster_name: pg-e2e
auth: {enabled: true, listen: "127.0.0.1:0"}
proxy: {enabled: true, listen: %q, postgres_listen: %q}
`, clusterDir, proxyAddr, pgAddr))
	admin := adminClient(t, clusterDir)

	pg := dbtest.StartPostgres(t, dbtest.Options{CertPrefix: dbServerFiles(t, admin), Users: []string{"alice", "bob", "carol"}, Databases: []string{"app"}})

	tok, err := admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	agent := startDaemon(t, fmt.Sprintf(`
data_dir: %s
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  host_id: agent-pg
  heartbeat_interval: 1s
  databases:
    - {name: pg1, protocol: postgres, uri: %q, labels: {env: dev}}
`, t.TempDir(), proxyAddr, tok.Secret, pg.Addr()))
	waitFor(t, "pg1 in the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(ctx)
		return err == nil && len(dbs) == 1
	})

	c := &pgCluster{admin: admin, pg: pg, cluster: cluster, agent: agent, proxyAddr: proxyAddr, clusterDir: clusterDir,
		pin: hostPin(t, admin)}
	c.alice = c.addUser(t, "alice", []string{"access"})
	c.profile, c.home, c.cfg = c.alice.profile, c.alice.home, c.alice.cfg
	return c
}

// pgUser is a user of the cluster logged in with pcl's profile code, with
// a route certificate for pg1 as the db user of their own name.
type pgUser struct {
	name    string
	profile *client.Profile
	home    string
	cfg     *client.DatabaseConfig
}

// addUser creates a user with roles whose db_users trait is their own
// name and db_names trait "app", logs them in and gets their route
// certificate for pg1.
func (c *pgCluster) addUser(t *testing.T, name string, roles []string) *pgUser {
	t.Helper()
	ctx := context.Background()
	_, err := c.admin.CreateUser(ctx, authclient.CreateUserRequest{
		User:     authclient.User{Name: name, Roles: roles, Traits: map[string][]string{"db_users": {name}, "db_names": {"app"}}},
		Password: name + "'s password",
	})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	profile, err := client.Login(ctx, client.LoginRequest{ProxyAddr: c.proxyAddr, Username: name, Password: name + "'s password", CAPin: c.pin}, client.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profile.DatabaseLogin(ctx, "pg1", name, "app"); err != nil {
		t.Fatal(err)
	}
	cfg, err := profile.DatabaseConfig(ctx, "pg1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port == 0 || cfg.AddrGuessed {
		t.Fatalf("the proxy did not advertise its PostgreSQL port: %+v", cfg)
	}
	return &pgUser{name: name, profile: profile, home: home, cfg: cfg}
}

// psql runs psql through the proxy with alice's route certificate.
func (c *pgCluster) psql(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd, err := c.cfg.Command(args)
	if err != nil {
		t.Fatal(err)
	}
	x, err := cmd.Cmd()
	if err != nil {
		t.Fatal(err)
	}
	// No PG* variable or service file from the machine may redirect psql.
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home, "PGCONNECT_TIMEOUT=20"}
	timer := time.AfterFunc(60*time.Second, func() { x.Process.Kill() })
	defer timer.Stop()
	out, err := x.CombinedOutput()
	return string(out), err
}

// queries returns the statements of db.session.query events, in order.
func (c *pgCluster) auditEvents(t *testing.T, typ string, want int) []map[string]any {
	t.Helper()
	var out []map[string]any
	waitFor(t, fmt.Sprintf("%d %s events in the audit log", want, typ), 20*time.Second, func() bool {
		raw, err := c.admin.SearchAuditEvents(context.Background(), authclient.AuditQuery{Types: []string{typ}, User: "alice"})
		if err != nil {
			return false
		}
		out = out[:0]
		for _, r := range raw {
			var m map[string]any
			if json.Unmarshal(r, &m) == nil {
				out = append(out, m)
			}
		}
		return len(out) >= want
	})
	return out
}

func requirePsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		if os.Getenv(dbtest.RequireEnv) == "1" {
			t.Fatal("psql is not installed (Debian package postgresql-client)")
		}
		t.Skip("psql is not installed (Debian package postgresql-client)")
	}
}

func TestPsqlThroughTheCluster(t *testing.T) {
	requirePsql(t)
	c := startPGCluster(t)
	out, err := c.psql(t, "-X", "-A", "-t", "-c", "select 42")
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("psql -c 'select 42': %v\n%s", err, out)
	}
	// It was the harness's server, as alice, over TCP: not a local socket.
	out, err = c.psql(t, "-X", "-A", "-t", "-c", "select current_user, inet_server_port()")
	if want := fmt.Sprintf("alice|%d", c.pg.Port); err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("psql reached %q (err %v), want %s", strings.TrimSpace(out), err, want)
	}
	events := c.auditEvents(t, "db.session.query", 2)
	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprint(e["query"]))
	}
	if want := []string{"select 42", "select current_user, inet_server_port()"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audited queries %q, want exactly %q", got, want)
	}
	ev := events[0]
	if ev["user"] != "alice" || ev["db_service"] != "pg1" || ev["db_user"] != "alice" || ev["db_name"] != "app" {
		t.Errorf("audit event attribution: %v", ev)
	}
}

// Stopping the agent ends its sessions and records their end before the
// agent's audit forwarder closes: no event is lost.
func TestAgentStopRecordsSessionEnds(t *testing.T) {
	c := startPGCluster(t)
	ctx := context.Background()
	var conns []*pgx.Conn
	for range 5 {
		conn := c.alice.connect(t)
		mustExec(t, conn, "select 1")
		conns = append(conns, conn)
	}
	c.agent.stop(t)
	for _, conn := range conns {
		conn.Close(ctx)
	}
	ends := c.searchAudit(t, authclient.AuditQuery{Types: []string{"db.session.end"}, User: "alice"}, "5 db.session.end events",
		func(evs []auditEvent) bool { return len(evs) >= 5 })
	if len(ends) != 5 {
		t.Fatalf("%d db.session.end events, want 5", len(ends))
	}
	if log := c.agent.log(); strings.Contains(log, "forwarder is closed") {
		t.Fatalf("the agent refused audit events while stopping:\n%s", log)
	}
}
