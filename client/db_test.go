package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
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
// db name app) and three databases from two agents; pg-dev is served by
// both.
func newDBCluster(t *testing.T) *authtest.Cluster {
	t.Helper()
	c := authtest.Start(t)
	c.AddRole(t, authtest.DevOnlyRole)
	c.AddUser(t, "alice", alicePassword, []string{"dev-only"}, map[string][]string{"db_users": {"alice"}, "db_names": {"app"}})
	c.Advertise(t, "agent-1",
		authclient.Database{Name: "pg-dev", Protocol: "postgres", URI: "10.0.0.1:5432",
			Labels: map[string]string{"env": "dev"}, Description: "the dev database"},
		authclient.Database{Name: "pg-prod", Protocol: "postgres", URI: "10.0.0.2:5432", Labels: map[string]string{"env": "prod"}},
	)
	c.Advertise(t, "agent-2",
		authclient.Database{Name: "pg-dev", Protocol: "postgres", URI: "10.0.0.1:5432",
			Labels: map[string]string{"env": "dev"}, Description: "the dev database"},
		authclient.Database{Name: "my-dev", Protocol: "mysql", URI: "10.0.0.3:3306", Labels: map[string]string{"env": "dev"}},
	)
	return c
}

// login logs user in at addr (the Auth service or a fake proxy) into home.
func login(t *testing.T, c *authtest.Cluster, addr, home, user string, ttl time.Duration) *client.Profile {
	t.Helper()
	p, err := client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: addr, Username: user, Password: alicePassword, CAPin: c.HostPin(), TTL: ttl,
	}, client.WithHome(home))
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return p
}

func TestDatabasesListsWhatTheRoleAllows(t *testing.T) {
	c := newDBCluster(t)
	p := login(t, c, c.Addr, t.TempDir(), "alice", 0)
	dbs, err := p.Databases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []authclient.Database{
		{Name: "my-dev", Protocol: "mysql", Labels: map[string]string{"env": "dev"}},
		{Name: "pg-dev", Protocol: "postgres", Labels: map[string]string{"env": "dev"}, Description: "the dev database"},
	}
	if !reflect.DeepEqual(dbs, want) {
		t.Errorf("Databases = %+v\nwant %+v", dbs, want)
	}
}

func TestDatabaseLoginStoresRouteCertificate(t *testing.T) {
	c := newDBCluster(t)
	ctx := context.Background()
	p := login(t, c, c.Addr, t.TempDir(), "alice", 0)

	// The db user and db name come from the traits.
	route, err := p.DatabaseLogin(ctx, "pg-dev", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if route.Name != "pg-dev" || route.Protocol != "postgres" || route.DBUser != "alice" || route.DBName != "app" ||
		route.Expires.After(p.Expires) || route.Expires.Before(time.Now().Add(11*time.Hour)) {
		t.Errorf("route = %+v (login expires %v)", route, p.Expires)
	}
	certPath := p.DatabaseCertPath("pg-dev")
	if want := filepath.Join(p.Dir(), "db", "alice", "pg-dev.crt"); certPath != want {
		t.Errorf("cert path %s, want %s", certPath, want)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(p.Dir(), "db"):          0o700,
		filepath.Join(p.Dir(), "db", "alice"): 0o700,
		certPath:                              0o600,
		filepath.Join(p.Dir(), "db", "alice", "pg-dev.json"): 0o600,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}

	// The certificate carries the route, verifies against the user CA and
	// is signed for the login's key.
	data, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ParseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	v := &ca.Verifier{Roots: []*x509.Certificate{c.Server.Authority(ca.UserCA).Cert}, Usage: x509.ExtKeyUsageClientAuth, ClusterName: "test"}
	id, err := v.Verify([]*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	if want := (ca.Route{ServiceName: "pg-dev", Protocol: "postgres", DBUser: "alice", DBName: "app"}); id.Route == nil || *id.Route != want {
		t.Errorf("route in the certificate = %+v, want %+v", id.Route, want)
	}
	if id.Kind != ca.KindUser || id.Username != "alice" || !slices.Equal(id.Roles, []string{"dev-only"}) {
		t.Errorf("identity = %+v", id)
	}
	userCert, err := p.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(userCert.PublicKey) {
		t.Errorf("the route certificate is not for the login's key")
	}

	routes, err := p.DatabaseRoutes()
	if err != nil || len(routes) != 1 || routes[0] != *route {
		t.Errorf("DatabaseRoutes = %+v, %v; want [%+v]", routes, err, *route)
	}

	// Straight at the Auth service there are no proxy settings: the
	// address logged in to is used, and flagged as a guess.
	cfg, err := p.DatabaseConfig(ctx, "pg-dev")
	if err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(c.Addr)
	port, _ := strconv.Atoi(portStr)
	want := &client.DatabaseConfig{
		Name: "pg-dev", Protocol: "postgres", Host: host, Port: port, DBUser: "alice", DBName: "app",
		CAFile: p.HostCAsPath(), CertFile: certPath, KeyFile: p.KeyPath(), Expires: cert.NotAfter, AddrGuessed: true,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("DatabaseConfig = %+v\nwant %+v", cfg, want)
	}
	if note := cfg.GuessNote(); !strings.Contains(note, "did not say where its proxy serves postgres, so "+c.Addr) {
		t.Errorf("GuessNote = %q", note)
	}
	if p.Proxy != nil {
		t.Errorf("a guess was cached: %+v", p.Proxy)
	}
	raw, err := os.ReadFile(filepath.Join(p.Home, "profile.json"))
	if err != nil || strings.Contains(string(raw), "proxy_settings") {
		t.Errorf("profile.json caches a guess: %s, %v", raw, err)
	}
}

func TestDatabaseLoginErrors(t *testing.T) {
	c := newDBCluster(t)
	c.AddUser(t, "bob", alicePassword, []string{"dev-only"}, map[string][]string{"db_users": {"a", "b", "*"}})
	ctx := context.Background()
	alice := login(t, c, c.Addr, t.TempDir(), "alice", 0)
	bob := login(t, c, c.Addr, t.TempDir(), "bob", 0)

	for _, tc := range []struct {
		name           string
		p              *client.Profile
		db, user, dbnm string
		want           string
		is             func(error) bool
	}{
		{"denied db user", alice, "pg-dev", "root", "app",
			`access to database "pg-dev" as db user "root" with db name "app" denied: no role allows db user "root" on database "pg-dev" (allowed: alice)`,
			authclient.IsAccessDenied},
		{"denied db name", alice, "pg-dev", "alice", "postgres",
			`access to database "pg-dev" as db user "alice" with db name "postgres" denied: no role allows db name "postgres" on database "pg-dev" (allowed: app)`,
			authclient.IsAccessDenied},
		{"database the role does not allow", alice, "pg-prod", "alice", "app",
			`database "pg-prod" is unknown, offline or not allowed by your roles; pcl db ls lists the databases you can reach`,
			authclient.IsNotFound},
		{"unknown database", alice, "nope", "alice", "app",
			`database "nope" is unknown, offline or not allowed by your roles; pcl db ls lists the databases you can reach`,
			authclient.IsNotFound},
		{"not a name", alice, "../x", "alice", "app",
			`"../x" is not a database name; pcl db ls lists those you can reach`, nil},
		{"several db users", bob, "pg-dev", "", "app",
			`choose the db user for database "pg-dev" with --db-user; your login allows: a, b`, client.IsChoiceError},
		{"no db names", bob, "pg-dev", "a", "",
			`name the db name for database "pg-dev" with --db-name (your login lists no db names to pick from)`, client.IsChoiceError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.DatabaseLogin(ctx, tc.db, tc.user, tc.dbnm)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("DatabaseLogin: %v\nwant %s", err, tc.want)
			}
			if tc.is != nil && !tc.is(err) {
				t.Errorf("%v is not of the expected type", err)
			}
		})
	}
	if routes, err := alice.DatabaseRoutes(); err != nil || len(routes) != 0 {
		t.Errorf("refused logins stored routes: %+v, %v", routes, err)
	}

	// MySQL sessions may start without a database.
	route, err := bob.DatabaseLogin(ctx, "my-dev", "b", "")
	if err != nil {
		t.Fatal(err)
	}
	if route.Protocol != "mysql" || route.DBUser != "b" || route.DBName != "" {
		t.Errorf("route = %+v", route)
	}
}

func TestDatabaseRouteExpiry(t *testing.T) {
	c := newDBCluster(t)
	ctx := context.Background()
	home := t.TempDir()
	// A 24h login: route certificates get the cluster's default 12h.
	p := login(t, c, c.Addr, home, "alice", 24*time.Hour)
	route, err := p.DatabaseLogin(ctx, "pg-dev", "alice", "app")
	if err != nil {
		t.Fatal(err)
	}
	if !route.Expires.Before(p.Expires) {
		t.Fatalf("route expires %v, login %v", route.Expires, p.Expires)
	}

	p.Clock = func() time.Time { return route.Expires.Add(time.Minute) }
	_, err = p.DatabaseConfig(ctx, "pg-dev")
	var re *client.RouteError
	if !errors.As(err, &re) || re.Reason != client.RouteExpired || !re.Expired.Equal(route.Expires) ||
		!strings.HasSuffix(err.Error(), "; run pcl db login pg-dev again") {
		t.Errorf("DatabaseConfig after the route expired: %v", err)
	}

	p.Clock = func() time.Time { return p.Expires.Add(time.Minute) }
	for what, err := range map[string]error{
		"DatabaseConfig": func() error { _, err := p.DatabaseConfig(ctx, "pg-dev"); return err }(),
		"DatabaseLogin":  func() error { _, err := p.DatabaseLogin(ctx, "pg-dev", "", ""); return err }(),
		"Databases":      func() error { _, err := p.Databases(ctx); return err }(),
	} {
		if !client.IsLoginExpired(err) || !strings.HasSuffix(err.Error(), "; log in again with pcl login") {
			t.Errorf("%s after the login expired: %v", what, err)
		}
	}

	// A new login has a new key: the old route certificate is stale.
	p2 := login(t, c, c.Addr, home, "alice", 0)
	if _, err := p2.DatabaseConfig(ctx, "pg-dev"); !errors.As(err, &re) || re.Reason != client.RouteStale ||
		err.Error() != `the certificate for database "pg-dev" belongs to an earlier login; run pcl db login pg-dev again` {
		t.Errorf("DatabaseConfig after a new login: %v", err)
	}
	if _, err := p2.DatabaseLogin(ctx, "pg-dev", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.DatabaseConfig(ctx, "pg-dev"); err != nil {
		t.Errorf("DatabaseConfig after logging in to the database again: %v", err)
	}
	if _, err := p2.DatabaseConfig(ctx, "my-dev"); !client.IsRouteError(err) ||
		err.Error() != `not logged in to database "my-dev"; run pcl db login my-dev first` {
		t.Errorf("DatabaseConfig without a route: %v", err)
	}
}

func TestDatabaseLogout(t *testing.T) {
	c := newDBCluster(t)
	ctx := context.Background()
	p := login(t, c, c.Addr, t.TempDir(), "alice", 0)
	for _, db := range []string{"pg-dev", "my-dev"} {
		if _, err := p.DatabaseLogin(ctx, db, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DatabaseLogout("pg-dev"); err != nil {
		t.Fatal(err)
	}
	if exists(p.DatabaseCertPath("pg-dev")) || !exists(p.DatabaseCertPath("my-dev")) {
		t.Errorf("DatabaseLogout(pg-dev) removed the wrong certificates")
	}
	if routes, _ := p.DatabaseRoutes(); len(routes) != 1 || routes[0].Name != "my-dev" {
		t.Errorf("routes after logging out of pg-dev: %+v", routes)
	}
	if err := p.DatabaseLogout("pg-dev"); !client.IsRouteError(err) {
		t.Errorf("DatabaseLogout twice: %v", err)
	}
	if err := p.DatabaseLogout(""); err != nil {
		t.Fatal(err)
	}
	if routes, err := p.DatabaseRoutes(); err != nil || len(routes) != 0 || exists(p.DatabaseCertPath("my-dev")) {
		t.Errorf("routes after logging out of all: %+v, %v", routes, err)
	}
	if err := p.DatabaseLogout(""); err != nil {
		t.Errorf("logging out of all with none: %v", err)
	}

	// Logging out of the cluster removes the route certificates too.
	if _, err := p.DatabaseLogin(ctx, "pg-dev", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := p.Logout(); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(p.Dir(), "db", "alice")) {
		t.Errorf("logout left the route certificates")
	}
}

func TestProxySettingsFromThePing(t *testing.T) {
	c := newDBCluster(t)
	ctx := context.Background()
	proxyAddr := c.StartFakeProxy(t, &authclient.ProxySettings{
		PostgresAddr: "0.0.0.0:5433", MySQLAddr: "db.example.com:3036",
	})
	home := t.TempDir()
	// Everything goes through the proxy: login, listing, route signing.
	p := login(t, c, proxyAddr, home, "alice", 0)
	if dbs, err := p.Databases(ctx); err != nil || len(dbs) != 2 {
		t.Fatalf("Databases through the proxy: %+v, %v", dbs, err)
	}
	for _, db := range []string{"pg-dev", "my-dev"} {
		if _, err := p.DatabaseLogin(ctx, db, "", ""); err != nil {
			t.Fatal(err)
		}
	}

	ps, err := p.ProxySettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := authclient.ProxySettings{PublicAddr: proxyAddr, PostgresAddr: "0.0.0.0:5433", MySQLAddr: "db.example.com:3036"}
	if ps.Guessed || ps.ProxySettings != want {
		t.Errorf("ProxySettings = %+v, want %+v", ps, want)
	}
	loaded, err := client.LoadProfile(home)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Proxy == nil || *loaded.Proxy != want {
		t.Errorf("profile.json caches %+v, want %+v", loaded.Proxy, want)
	}

	// A listener on all interfaces is reached at the proxy's host.
	cfg, err := loaded.DatabaseConfig(ctx, "pg-dev")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "127.0.0.1" || cfg.Port != 5433 || cfg.DirectTLS || cfg.AddrGuessed || cfg.GuessNote() != "" {
		t.Errorf("postgres config = %+v", cfg)
	}
	cfg, err = loaded.DatabaseConfig(ctx, "my-dev")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "db.example.com" || cfg.Port != 3036 || cfg.DBUser != "alice" || cfg.DBName != "app" {
		t.Errorf("mysql config = %+v", cfg)
	}

	// Without native listeners PostgreSQL goes to the public port with
	// direct TLS, and MySQL cannot be reached.
	loaded.Proxy = &authclient.ProxySettings{PublicAddr: "proxy.example.com:3080"}
	cfg, err = loaded.DatabaseConfig(ctx, "pg-dev")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "proxy.example.com" || cfg.Port != 3080 || !cfg.DirectTLS {
		t.Errorf("postgres config without a listener = %+v", cfg)
	}
	if _, err := loaded.DatabaseConfig(ctx, "my-dev"); err == nil ||
		err.Error() != "the proxy at proxy.example.com:3080 has no MySQL listener; ask an administrator to set mysql_listen on the proxy" {
		t.Errorf("mysql without a listener: %v", err)
	}

	// A new login asks again.
	p = login(t, c, proxyAddr, home, "alice", 0)
	if p.Proxy != nil {
		t.Errorf("a new login kept the cached settings")
	}
}

func TestProfileJSONWithProxySettings(t *testing.T) {
	// The cache is a plain field of profile.json.
	p := client.Profile{ProxyAddr: "p:1", Username: "alice", Proxy: &authclient.ProxySettings{PublicAddr: "p:1", PostgresAddr: "p:5432"}}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"proxy_settings":{"public_addr":"p:1","postgres_addr":"p:5432"}`) {
		t.Errorf("profile JSON %s", data)
	}
}
