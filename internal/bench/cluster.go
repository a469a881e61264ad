package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	clientbench "github.com/portcullis-db/portcullis/client/bench"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// Names the suite gives the things it creates.
const (
	benchUser    = "bench" // the Portcullis user, and the database user of both servers
	benchDB      = "app"   // the database both servers hold
	pgService    = "pg"    // the agent's name for the PostgreSQL
	myService    = "my"    // the agent's name for the MariaDB
	agentHostID  = "bench-agent"
	benchPasswd  = "the benchmark user's password"
	daemonStop   = 30 * time.Second // graceful stop of a daemon before it is killed
	readyTimeout = 60 * time.Second
)

// clusterConfig says how to start a [cluster].
type clusterConfig struct {
	dir      string // work directory (exists, empty)
	bin      string // the portcullis daemon binary
	logLevel string // the daemons' log level
	// Settings of the database servers (dbtest.Options.Settings).
	pgSettings, mySettings map[string]string
	log                    *slog.Logger
	// diag gives each daemon a diagnostics endpoint (diag_addr), for
	// profiling.
	diag bool
}

// cluster is the whole setup: PostgreSQL and MariaDB from the test
// harness, and Auth, proxy and agent as three processes, the agent
// connected to the proxy through the reverse tunnel and serving both
// databases.
type cluster struct {
	cfg   clusterConfig
	auth  *daemon
	proxy *daemon
	agent *daemon
	admin *authclient.Client
	pin   string // the host CA pin

	authAddr, proxyAddr, pgListen, myListen string
	diagAddrs                               map[string]string // by daemon name, when cfg.diag

	pg *dbtest.Postgres
	my *dbtest.MariaDB

	// Direct: the database CA and a client certificate it signed for
	// benchUser, as the agent's own.
	dbCAFile, certFile, keyFile string
	// Through Portcullis: benchUser's route certificates.
	pgRoute, myRoute *client.DatabaseConfig
}

// startCluster starts everything; on error what was started is stopped.
func startCluster(ctx context.Context, cfg clusterConfig) (_ *cluster, err error) {
	c := &cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	for _, sub := range []string{"auth", "proxy", "agent", "certs", "home"} {
		if err := os.MkdirAll(filepath.Join(cfg.dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if err := c.startAuth(ctx); err != nil {
		return nil, err
	}
	if err := c.startDatabases(ctx); err != nil {
		return nil, err
	}
	if err := c.startProxy(ctx); err != nil {
		return nil, err
	}
	if err := c.startAgent(ctx); err != nil {
		return nil, err
	}
	if err := c.login(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cluster) logf(format string, args ...any) { c.cfg.log.Info(fmt.Sprintf(format, args...)) }

// writeConfig writes a daemon's YAML with the common settings.
func (c *cluster) writeConfig(name, body string) (string, error) {
	path := filepath.Join(c.cfg.dir, name, "portcullis.yaml")
	yaml := fmt.Sprintf("data_dir: %s\nlog: {level: %s}\n", filepath.Join(c.cfg.dir, name, "data"), c.cfg.logLevel)
	if c.cfg.diag {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		if c.diagAddrs == nil {
			c.diagAddrs = make(map[string]string)
		}
		c.diagAddrs[name] = addr
		yaml += fmt.Sprintf("diag_addr: %q\n", addr)
	}
	return path, os.WriteFile(path, []byte(yaml+body), 0o600)
}

func (c *cluster) newDaemon(name, config string) *daemon {
	return &daemon{name: name, bin: c.cfg.bin, config: config, logPath: filepath.Join(c.cfg.dir, name, "daemon.log"), diagAddr: c.diagAddrs[name]}
}

func (c *cluster) startAuth(ctx context.Context) error {
	var err error
	if c.authAddr, err = freeAddr(); err != nil {
		return err
	}
	conf, err := c.writeConfig("auth", fmt.Sprintf("cluster_name: bench\nauth: {enabled: true, listen: %q}\n", c.authAddr))
	if err != nil {
		return err
	}
	c.auth = c.newDaemon("auth", conf)
	if err := c.auth.start(); err != nil {
		return err
	}
	dataDir := filepath.Join(c.cfg.dir, "auth", "data")
	err = waitUntil(ctx, readyTimeout, c.auth, "the Auth service", func(ctx context.Context) error {
		f, err := authclient.ReadIdentityFile(filepath.Join(dataDir, authclient.AdminIdentityFile))
		if err != nil {
			return err
		}
		if c.admin == nil {
			if c.admin, err = authclient.New(c.authAddr, authclient.WithTLSConfig(f.TLSConfig())); err != nil {
				return err
			}
		}
		st, err := c.admin.Status(ctx)
		if err != nil {
			return err
		}
		for _, a := range st.CAs {
			if a.Type == "host" {
				c.pin = a.Fingerprint
			}
		}
		if c.pin == "" {
			return errors.New("the cluster reports no host CA")
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.logf("Auth service ready on %s", c.authAddr)
	return nil
}

// startDatabases signs the servers' certificates and the direct client
// certificate with the cluster's database CA and starts both servers.
func (c *cluster) startDatabases(ctx context.Context) error {
	certs := filepath.Join(c.cfg.dir, "certs")
	prefix := filepath.Join(certs, "server")
	key, err := ca.GenerateKey()
	if err != nil {
		return err
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		return err
	}
	signed, err := c.admin.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, Hosts: []string{dbtest.Host, "localhost"}})
	if err != nil {
		return fmt.Errorf("bench: sign the database servers' certificate: %w", err)
	}
	cert, err := ca.ParseCertPEM([]byte(signed.Cert))
	if err != nil {
		return err
	}
	var dbCAs []*x509.Certificate
	for _, p := range signed.DBCAs {
		crt, err := ca.ParseCertPEM([]byte(p))
		if err != nil {
			return err
		}
		dbCAs = append(dbCAs, crt)
	}
	if err := ca.WriteDatabaseServerFiles(prefix, cert.Raw, key, dbCAs); err != nil {
		return err
	}

	// The direct client's certificate, from the same CA the agent's come
	// from (what `pctl auth sign --format db --user` would make).
	ckey, err := ca.GenerateKey()
	if err != nil {
		return err
	}
	cpub, _ := authclient.MarshalPublicKey(ckey.Public())
	csigned, err := c.admin.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: cpub, DBUser: benchUser, TTL: 12 * time.Hour})
	if err != nil {
		return fmt.Errorf("bench: sign the direct client certificate: %w", err)
	}
	keyPEM, err := ca.MarshalPrivateKeyPEM(ckey)
	if err != nil {
		return err
	}
	c.certFile, c.keyFile, c.dbCAFile = filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"), filepath.Join(certs, "db-ca.crt")
	if err := os.WriteFile(c.certFile, []byte(csigned.Cert), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(c.dbCAFile, []byte(strings.Join(csigned.DBCAs, "")), 0o644); err != nil {
		return err
	}

	var wg sync.WaitGroup
	var pgErr, myErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.pg, pgErr = dbtest.NewPostgres(dbtest.Options{CertPrefix: prefix, Users: []string{benchUser}, Databases: []string{benchDB}, Settings: c.cfg.pgSettings})
	}()
	go func() {
		defer wg.Done()
		c.my, myErr = dbtest.NewMariaDB(dbtest.Options{CertPrefix: prefix, Users: []string{benchUser}, Databases: []string{benchDB}, Settings: c.cfg.mySettings})
	}()
	wg.Wait()
	if err := errors.Join(pgErr, myErr); err != nil {
		return err
	}
	c.logf("PostgreSQL %s on %s and MariaDB %s on %s ready", c.pg.Version, c.pg.Addr(), c.my.Version, c.my.Addr())
	return nil
}

func (c *cluster) startProxy(ctx context.Context) error {
	tok, err := c.admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "proxy"})
	if err != nil {
		return fmt.Errorf("bench: make the proxy's join token: %w", err)
	}
	for _, p := range []*string{&c.proxyAddr, &c.pgListen, &c.myListen} {
		if *p, err = freeAddr(); err != nil {
			return err
		}
	}
	conf, err := c.writeConfig("proxy", fmt.Sprintf(`proxy:
  enabled: true
  listen: %q
  auth_addr: %q
  join_token: %q
  ca_pin: %q
  postgres_listen: %q
  mysql_listen: %q
`, c.proxyAddr, c.authAddr, tok.Secret, c.pin, c.pgListen, c.myListen))
	if err != nil {
		return err
	}
	c.proxy = c.newDaemon("proxy", conf)
	return c.runProxy(ctx)
}

// runProxy starts the proxy process and waits until it answers.
func (c *cluster) runProxy(ctx context.Context) error {
	if err := c.proxy.start(); err != nil {
		return err
	}
	if err := c.waitProxy(ctx); err != nil {
		return err
	}
	c.logf("proxy ready on %s (PostgreSQL %s, MySQL %s)", c.proxyAddr, c.pgListen, c.myListen)
	return nil
}

// waitProxy waits until the proxy answers a ping through its own API.
func (c *cluster) waitProxy(ctx context.Context) error {
	tc, err := authclient.PinnedTLSConfig(c.pin)
	if err != nil {
		return err
	}
	api, err := authclient.New(c.proxyAddr, authclient.WithTLSConfig(tc), authclient.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer api.Close()
	return waitUntil(ctx, readyTimeout, c.proxy, "the proxy", func(ctx context.Context) error {
		ping, err := api.Ping(ctx)
		if err == nil && ping.Proxy == nil {
			err = errors.New("the answer carries no proxy settings")
		}
		return err
	})
}

func (c *cluster) startAgent(ctx context.Context) error {
	tok, err := c.admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		return fmt.Errorf("bench: make the agent's join token: %w", err)
	}
	conf, err := c.writeConfig("agent", fmt.Sprintf(`db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  ca_pin: %q
  host_id: %s
  databases:
    - {name: %s, protocol: postgres, uri: %q}
    - {name: %s, protocol: mysql, uri: %q}
`, c.proxyAddr, tok.Secret, c.pin, agentHostID, pgService, c.pg.Addr(), myService, c.my.Addr()))
	if err != nil {
		return err
	}
	c.agent = c.newDaemon("agent", conf)
	if err := c.agent.start(); err != nil {
		return err
	}
	err = waitUntil(ctx, readyTimeout, c.agent, "the agent's databases in the inventory", func(ctx context.Context) error {
		dbs, err := c.admin.ListDatabases(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, d := range dbs {
			if d.HostID == agentHostID {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d of the agent's 2 databases listed", n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.logf("agent connected through the reverse tunnel")
	return nil
}

// login creates the benchmark user, logs in as pcl does and gets route
// certificates for both databases.
func (c *cluster) login(ctx context.Context) error {
	_, err := c.admin.CreateUser(ctx, authclient.CreateUserRequest{
		User: authclient.User{Name: benchUser, Roles: []string{"access"},
			Traits: map[string][]string{"db_users": {benchUser}, "db_names": {benchDB}}},
		Password: benchPasswd,
	})
	if err != nil {
		return fmt.Errorf("bench: create the user: %w", err)
	}
	profile, err := client.Login(ctx, client.LoginRequest{ProxyAddr: c.proxyAddr, Username: benchUser, Password: benchPasswd, CAPin: c.pin},
		client.WithHome(filepath.Join(c.cfg.dir, "home")))
	if err != nil {
		return fmt.Errorf("bench: log in: %w", err)
	}
	for _, r := range []struct {
		name string
		dst  **client.DatabaseConfig
	}{{pgService, &c.pgRoute}, {myService, &c.myRoute}} {
		if _, err := profile.DatabaseLogin(ctx, r.name, benchUser, benchDB); err != nil {
			return fmt.Errorf("bench: route certificate for %s: %w", r.name, err)
		}
		if *r.dst, err = profile.DatabaseConfig(ctx, r.name); err != nil {
			return err
		}
	}
	return nil
}

// restartProxy stops the proxy process and starts it again; the agent
// reconnects by itself.
func (c *cluster) restartProxy(ctx context.Context) error {
	if err := c.proxy.stop(daemonStop); err != nil {
		return err
	}
	return c.runProxy(ctx)
}

// restartAgent stops the agent process and starts it again.
func (c *cluster) restartAgent(ctx context.Context) error {
	if err := c.agent.stop(daemonStop); err != nil {
		return err
	}
	return c.agent.start()
}

// freshProcesses restarts the proxy and the agent so that a memory
// measurement starts from processes that have not run other workloads,
// and waits until both databases are reachable through them.
func (c *cluster) freshProcesses(ctx context.Context) error {
	if err := c.agent.stop(daemonStop); err != nil {
		return err
	}
	if err := c.restartProxy(ctx); err != nil {
		return err
	}
	if err := c.agent.start(); err != nil {
		return err
	}
	return c.waitReachable(ctx)
}

// waitReachable waits until a query through Portcullis works on both
// databases.
func (c *cluster) waitReachable(ctx context.Context) error {
	pgCfg, myCfg, err := c.targets(Portcullis)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		what string
		cfg  *clientbench.Target
	}{{"PostgreSQL through Portcullis", pgCfg}, {"MariaDB through Portcullis", myCfg}} {
		dial := p.cfg.Dialer("SELECT 1")
		err := waitUntil(ctx, readyTimeout, c.agent, p.what, func(ctx context.Context) error {
			if !c.proxy.running() {
				return c.proxy.exitError()
			}
			conn, err := dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.Do(ctx)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// targets are how the client reaches each database on a side.
func (c *cluster) targets(side Side) (pg, my *clientbench.Target, err error) {
	if side == Portcullis {
		if pg, err = clientbench.DatabaseTarget(c.pgRoute); err != nil {
			return nil, nil, err
		}
		if my, err = clientbench.DatabaseTarget(c.myRoute); err != nil {
			return nil, nil, err
		}
		return pg, my, nil
	}
	pc, err := pgx.ParseConfig(c.pg.DSN(benchUser, benchDB, c.certFile, c.keyFile))
	if err != nil {
		return nil, nil, err
	}
	tc, err := clientTLS(c.dbCAFile, c.certFile, c.keyFile, dbtest.Host)
	if err != nil {
		return nil, nil, err
	}
	mc := c.my.Config(benchUser, benchDB, tc)
	mc.Logger = &mysql.NopLogger{}
	return &clientbench.Target{Protocol: client.ProtocolPostgres, Postgres: pc},
		&clientbench.Target{Protocol: client.ProtocolMySQL, MySQL: mc}, nil
}

// pgEnv are the libpq variables that point pgbench at PostgreSQL on a
// side.
func (c *cluster) pgEnv(side Side) []string {
	env := []string{"PGUSER=" + benchUser, "PGDATABASE=" + benchDB, "PGSSLMODE=verify-full", "PGCONNECT_TIMEOUT=20"}
	if side == Portcullis {
		r := c.pgRoute
		env = append(env, "PGHOST="+r.Host, "PGPORT="+strconv.Itoa(r.Port),
			"PGSSLROOTCERT="+r.CAFile, "PGSSLCERT="+r.CertFile, "PGSSLKEY="+r.KeyFile)
		if r.DirectTLS {
			env = append(env, "PGSSLNEGOTIATION=direct")
		}
		return env
	}
	return append(env, "PGHOST="+c.pg.Host, "PGPORT="+strconv.Itoa(c.pg.Port),
		"PGSSLROOTCERT="+c.pg.CAFile, "PGSSLCERT="+c.certFile, "PGSSLKEY="+c.keyFile)
}

// pgAdmin runs statements as PostgreSQL's superuser in the benchmark
// database.
func (c *cluster) pgAdmin(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, c.pg.AdminDSN(benchDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("bench: PostgreSQL: %s: %w", s, err)
		}
	}
	return nil
}

// myAdmin runs statements as MariaDB's root in the benchmark database.
func (c *cluster) myAdmin(ctx context.Context, stmts ...string) error {
	conn, err := mysql.NewConnector(c.my.AdminConfig(benchDB))
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("bench: MariaDB: %s: %w", s, err)
		}
	}
	return nil
}

// close stops everything that was started.
func (c *cluster) close() {
	for _, d := range []*daemon{c.agent, c.proxy, c.auth} {
		if d != nil {
			if err := d.stop(daemonStop); err != nil {
				c.cfg.log.Warn(err.Error())
			}
		}
	}
	if c.admin != nil {
		c.admin.Close()
	}
	if c.pg != nil {
		if err := c.pg.Close(); err != nil {
			c.cfg.log.Warn(err.Error())
		}
	}
	if c.my != nil {
		if err := c.my.Close(); err != nil {
			c.cfg.log.Warn(err.Error())
		}
	}
}

// waitUntil polls check until it succeeds, d exits, or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, d *daemon, what string, check func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if d != nil && !d.running() {
			return d.exitError()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: waited %v for %s: %w", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeAddr is a loopback address nothing listened on a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// clientTLS presents certFile/keyFile and verifies the server against
// caFile for serverName.
func clientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("bench: %s holds no certificates", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// buildPortcullis builds cmd/portcullis of the module in moduleDir into
// dir and returns the binary's path.
func buildPortcullis(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "portcullis")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portcullis")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build ./cmd/portcullis: %v\n%s", err, out)
	}
	return bin, nil
}

// cpuTimes is the CPU time each daemon has used so far, by name; a daemon
// whose time cannot be read is left out.
func (c *cluster) cpuTimes() map[string]time.Duration {
	out := make(map[string]time.Duration, 3)
	for _, d := range []*daemon{c.auth, c.proxy, c.agent} {
		if d == nil || !d.running() {
			continue
		}
		if t, err := CPUTime(d.pid()); err == nil {
			out[d.name] = t
		}
	}
	return out
}
