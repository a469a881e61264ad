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

func startMyCluster(t *testing.T) *myCluster {
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
	db := dbtest.StartMariaDB(t, dbtest.Options{CertPrefix: dbServerFiles(t, admin), Users: []string{"alice"}, Databases: []string{"app"}})
	tok, err := admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, fmt.Sprintf(`
data_dir: %s
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  heartbeat_interval: 1s
  databases:
    - {name: my1, protocol: mysql, uri: %q}
`, t.TempDir(), proxyAddr, tok.Secret, db.Addr()))
	waitFor(t, "my1 in the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(ctx)
		return err == nil && len(dbs) == 1
	})
	_, err = admin.CreateUser(ctx, authclient.CreateUserRequest{
		User:     authclient.User{Name: "alice", Roles: []string{"access"}, Traits: map[string][]string{"db_users": {"alice"}, "db_names": {"app"}}},
		Password: "alice's password",
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pin string
	for _, c := range st.CAs {
		if c.Type == "host" {
			pin = c.Fingerprint
		}
	}
	home := t.TempDir()
	profile, err := client.Login(ctx, client.LoginRequest{ProxyAddr: proxyAddr, Username: "alice", Password: "alice's password", CAPin: pin}, client.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profile.DatabaseLogin(ctx, "my1", "alice", "app"); err != nil {
		t.Fatal(err)
	}
	cfg, err := profile.DatabaseConfig(ctx, "my1")
	if err != nil {
		t.Fatal(err)
	}
	return &myCluster{admin: admin, db: db, home: home, cfg: cfg, profile: profile}
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
