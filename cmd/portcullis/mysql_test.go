package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// myCluster is a whole cluster in front of a real MariaDB, with alice
// logged in and holding a route certificate for it.
type myCluster struct {
	admin   *authclient.Client
	db      *dbtest.MariaDB
	home    string
	cfg     *client.DatabaseConfig
	profile *client.Profile

	proxyAddr string // the proxy's public (API and tunnel) port
	pin       string // the host CA pin clients log in with
	alice     *myUser
}

// myClusterOptions adds to what startMyCluster builds.
type myClusterOptions struct {
	// users are MariaDB users besides alice (each logs in by a
	// certificate with their own name, and may use database app).
	users []string
	// databases are more entries for the agent's db.databases, in YAML
	// flow style; "$ADDR" stands for the MariaDB's address. They all
	// serve the same MariaDB under other names and settings.
	databases []string
}

// dbServerFiles signs a database server certificate with the cluster's
// database CA and writes it as `pctl auth sign --format db` does.
func dbServerFiles(t *testing.T, admin *authclient.Client) string {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := authclient.MarshalPublicKey(key.Public())
	signed, err := admin.SignDatabaseCert(context.Background(), authclient.DatabaseCertRequest{PublicKey: pub, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ca.ParseCertPEM([]byte(signed.Cert))
	dbCA, _ := ca.ParseCertPEM([]byte(signed.DBCAs[0]))
	prefix := filepath.Join(t.TempDir(), "db")
	if err := ca.WriteDatabaseServerFiles(prefix, cert.Raw, key, []*x509.Certificate{dbCA}); err != nil {
		t.Fatal(err)
	}
	return prefix
}

// hostPin is the cluster's host CA pin, as `pctl status` shows it.
func hostPin(t *testing.T, admin *authclient.Client) string {
	t.Helper()
	st, err := admin.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.CAs {
		if a.Type == "host" {
			return a.Fingerprint
		}
	}
	t.Fatal("the cluster reports no host CA")
	return ""
}

func startMyCluster(t *testing.T) *myCluster {
	t.Helper()
	return startMyClusterWith(t, myClusterOptions{})
}

// startMyClusterWith starts the cluster daemon (auth, proxy with a native
// MySQL port), a MariaDB configured from its database CA, and an agent
// daemon that joined with a token and serves the MariaDB as my1 (and as
// opts.databases); alice logs in and gets her route certificate for my1.
func startMyClusterWith(t *testing.T, opts myClusterOptions) *myCluster {
	t.Helper()
	ctx := context.Background()
	clusterDir := t.TempDir()
	proxyAddr, myAddr := freeAddr(t), freeAddr(t)
	startDaemon(t, fmt.Sprintf(`
data_dir: %s
cluster_name: my-e2e
auth: {enabled: true, listen: "127.0.0.1:0"}
proxy: {enabled: true, listen: %q, mysql_listen: %q}
`, clusterDir, proxyAddr, myAddr))
	admin := adminClient(t, clusterDir)
	db := dbtest.StartMariaDB(t, dbtest.Options{CertPrefix: dbServerFiles(t, admin), Users: append([]string{"alice"}, opts.users...), Databases: []string{"app"}})
	tok, err := admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	var more strings.Builder
	for _, d := range opts.databases {
		fmt.Fprintf(&more, "    - %s\n", strings.ReplaceAll(d, "$ADDR", db.Addr()))
	}
	startDaemon(t, fmt.Sprintf(`
data_dir: %s
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  host_id: agent-my
  heartbeat_interval: 1s
  databases:
    - {name: my1, protocol: mysql, uri: %q}
%s`, t.TempDir(), proxyAddr, tok.Secret, db.Addr(), more.String()))
	waitFor(t, "the agent's databases in the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(ctx)
		return err == nil && len(dbs) == 1+len(opts.databases)
	})
	c := &myCluster{admin: admin, db: db, proxyAddr: proxyAddr, pin: hostPin(t, admin)}
	c.alice = c.addUser(t, "alice", []string{"access"})
	c.profile, c.home, c.cfg = c.alice.profile, c.alice.home, c.alice.cfg
	return c
}

// myUser is a user of the cluster logged in with pcl's profile code, with
// a route certificate for my1 as the db user of their own name.
type myUser struct {
	name    string
	profile *client.Profile
	home    string
	cfg     *client.DatabaseConfig
}

// addUser creates a user with roles whose db_users trait is their own
// name and db_names trait "app", logs them in and gets their route
// certificate for my1.
func (c *myCluster) addUser(t *testing.T, name string, roles []string) *myUser {
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
	u := &myUser{name: name, profile: profile, home: home}
	u.cfg = u.route(t, "my1")
	return u
}

// route gets u a route certificate for database service as the db user
// of u's name, on database app, and returns how to reach it.
func (u *myUser) route(t *testing.T, service string) *client.DatabaseConfig {
	t.Helper()
	ctx := context.Background()
	if _, err := u.profile.DatabaseLogin(ctx, service, u.name, "app"); err != nil {
		t.Fatal(err)
	}
	cfg, err := u.profile.DatabaseConfig(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port == 0 || cfg.AddrGuessed {
		t.Fatalf("the proxy did not advertise its MySQL port: %+v", cfg)
	}
	return cfg
}

func (c *myCluster) queries(t *testing.T, want int) []string {
	t.Helper()
	var got []string
	waitFor(t, fmt.Sprintf("%d queries in the audit log", want), 20*time.Second, func() bool {
		raw, err := c.admin.SearchAuditEvents(context.Background(), authclient.AuditQuery{Types: []string{"db.session.query"}, User: "alice", DB: "my1"})
		if err != nil {
			return false
		}
		got = got[:0]
		for _, r := range raw {
			var e struct{ Query string }
			if json.Unmarshal(r, &e) == nil {
				got = append(got, e.Query)
			}
		}
		return len(got) >= want
	})
	return got
}

func TestMariaDBCLIThroughTheCluster(t *testing.T) {
	t.Parallel()
	c := startMyCluster(t)
	cmd, err := c.cfg.Command([]string{"-N", "-B", "-e", "select 42; select current_user()"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := cmd.Cmd()
	if err != nil {
		if os.Getenv(dbtest.RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home}
	out, err := x.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "42\nalice@") {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	got := c.queries(t, 2)
	// The mariadb client sends its own statements first (select
	// @@version_comment); the user's two must be the last, in order.
	if n := len(got); n < 2 || got[n-2] != "select 42" || got[n-1] != "select current_user()" {
		t.Errorf("audited queries %q", got)
	}
}

func TestGoSQLDriverThroughTheCluster(t *testing.T) {
	t.Parallel()
	c := startMyCluster(t)
	pair, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(c.cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: c.cfg.Host}
	mc := mysql.NewConfig()
	mc.User, mc.DBName = "alice", "app"
	mc.Net, mc.Addr = "tcp", fmt.Sprintf("%s:%d", c.cfg.Host, c.cfg.Port)
	mc.TLS = tlsCfg
	mc.ParseTime = true
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "create table t (id int primary key, name varchar(20))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "insert into t values (?, ?)", 1, "uno"); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRowContext(ctx, "select name from t where id = ?", 1).Scan(&name); err != nil || name != "uno" {
		t.Fatalf("select: %q %v", name, err)
	}
}
