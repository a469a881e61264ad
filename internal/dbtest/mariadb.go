package dbtest

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBSuperuser is the superuser of a harness MariaDB; it connects only
// over the server's unix socket, without a password.
const MariaDBSuperuser = "root"

// MariaDB is a running throwaway MariaDB server.
type MariaDB struct {
	Host    string // "127.0.0.1"
	Port    int
	Version string // what VERSION() returns, e.g. "10.11.19-MariaDB-0+deb12u1"
	DataDir string
	Socket  string // the unix socket file
	CAFile  string // the CA certificates (a copy of PREFIX.cas) clients verify the server with
	LogFile string // the server's error log

	base string // the directory holding everything above; removed at cleanup
	proc *Process

	stopOnce sync.Once
	stopErr  error
}

// StartMariaDB starts a MariaDB server configured by opts and stops it,
// removing its files, when the test ends. The server listens on 127.0.0.1
// only, requires TLS for TCP connections (require_secure_transport), and
// each user in opts.Users logs in from any host with a client certificate
// whose subject is exactly CN=<user> (REQUIRE SUBJECT '/CN=<user>'). root
// logs in over the unix socket only. A missing installation skips the test
// (fails with PORTCULLIS_REQUIRE_DB=1).
func StartMariaDB(t testing.TB, opts Options) *MariaDB {
	t.Helper()
	started := time.Now()
	m, err := startMariaDB(opts)
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		if err := m.close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("dbtest: MariaDB %s ready on %s in %v", m.Version, m.Addr(), time.Since(started).Round(time.Millisecond))
	return m
}

// Addr is the server's TCP address, "127.0.0.1:PORT".
func (m *MariaDB) Addr() string { return fmt.Sprintf("%s:%d", m.Host, m.Port) }

// TLSConfig is a client TLS configuration that presents the certificate
// in certFile/keyFile and verifies the server against CAFile.
func (m *MariaDB) TLSConfig(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	return ClientTLS(t, m.CAFile, certFile, keyFile)
}

// Config is a go-sql-driver/mysql configuration that logs in as user to
// database over TCP with tlsConfig (nil means plaintext, which the server
// refuses).
func (m *MariaDB) Config(user, database string, tlsConfig *tls.Config) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Net = "tcp"
	cfg.Addr = m.Addr()
	cfg.DBName = database
	cfg.TLS = tlsConfig
	cfg.Timeout = 10 * time.Second
	return cfg
}

// Connect opens a database/sql handle that logs in as user to database
// over TLS with the client certificate in certFile/keyFile, and pings it.
// It is closed when the test ends.
func (m *MariaDB) Connect(t testing.TB, user, database, certFile, keyFile string) *sql.DB {
	t.Helper()
	return openMySQL(t, m.Config(user, database, m.TLSConfig(t, certFile, keyFile)))
}

// ClientArgs are the arguments that make the `mariadb` command-line client
// log in as user to database ("" for none) over TLS with the client
// certificate in certFile/keyFile, verifying the server.
func (m *MariaDB) ClientArgs(user, database, certFile, keyFile string) []string {
	args := []string{
		"--no-defaults", "--protocol=TCP", "--host=" + m.Host, "--port=" + strconv.Itoa(m.Port), "--user=" + user,
		"--ssl", "--ssl-ca=" + m.CAFile, "--ssl-cert=" + certFile, "--ssl-key=" + keyFile, "--ssl-verify-server-cert",
		"--connect-timeout=10",
	}
	if database != "" {
		args = append(args, "--database="+database)
	}
	return args
}

// AdminConfig is a go-sql-driver/mysql configuration for root over the
// unix socket; database may be empty.
func (m *MariaDB) AdminConfig(database string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = MariaDBSuperuser
	cfg.Net = "unix"
	cfg.Addr = m.Socket
	cfg.DBName = database
	cfg.Timeout = 10 * time.Second
	return cfg
}

// Admin opens a database/sql handle for root over the unix socket; it is
// closed when the test ends.
func (m *MariaDB) Admin(t testing.TB) *sql.DB {
	t.Helper()
	return openMySQL(t, m.AdminConfig(""))
}

// Exec runs query as root.
func (m *MariaDB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	db := m.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("dbtest: MariaDB: %s: %v", query, err)
	}
}

// LogTail returns the last lines of the server's error log.
func (m *MariaDB) LogTail(lines int) string { return LogTail(m.LogFile, lines) }

// Stop shuts the server down (SIGTERM) and waits until it has exited.
// Later calls do nothing; the files stay until the test ends.
func (m *MariaDB) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.proc.Stop(syscall.SIGTERM, stopTimeout) })
	return m.stopErr
}

func (m *MariaDB) close() error {
	err := m.Stop()
	if rmErr := os.RemoveAll(m.base); rmErr != nil && err == nil {
		err = fmt.Errorf("dbtest: remove the MariaDB directory: %w", rmErr)
	}
	return err
}

func openMySQL(t testing.TB, cfg *mysql.Config) *sql.DB {
	t.Helper()
	db, err := openMySQLErr(cfg)
	if err != nil {
		t.Fatalf("dbtest: connect to MariaDB as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openMySQLErr(cfg *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func startMariaDB(opts Options) (_ *MariaDB, err error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	mariadbd, err := lookBinary("mariadbd", "mariadb-server")
	if err != nil {
		return nil, err
	}
	installDB, err := lookBinary("mariadb-install-db", "mariadb-server")
	if err != nil {
		return nil, err
	}
	owner := currentAccount()
	base, err := baseDir("dbtest-my-", owner)
	if err != nil {
		return nil, err
	}
	m := &MariaDB{
		Host:    Host,
		DataDir: filepath.Join(base, "data"),
		Socket:  filepath.Join(base, "mysqld.sock"),
		CAFile:  filepath.Join(base, "ca.crt"),
		LogFile: filepath.Join(base, "error.log"),
		base:    base,
	}
	defer func() {
		if err != nil {
			if m.proc != nil {
				m.Stop()
			}
			os.RemoveAll(base)
		}
	}()

	for _, f := range []struct {
		ext, dst string
		perm     os.FileMode
	}{
		{".crt", "server.crt", 0o644},
		{".key", "server.key", 0o600},
		{".cas", "server.cas", 0o644},
		{".cas", "ca.crt", 0o644},
	} {
		if err := copyFile(opts.CertPrefix+f.ext, filepath.Join(base, f.dst), f.perm, owner); err != nil {
			return nil, err
		}
	}

	// InnoDB settings shared by the install and the server, so that the
	// server does not resize what the install made. Durability is off: the
	// data is thrown away.
	innodb := []string{
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--innodb-use-native-aio=0", // io_uring/libaio are often unavailable in containers
	}
	asRoot := []string{}
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"} // mariadbd refuses to run as root otherwise
	}

	install := append([]string{
		"--no-defaults", "--datadir=" + m.DataDir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve",
		// Its own temporary directory: bootstraps running at once in a
		// shared /tmp can collide on temporary table files.
		"--tmpdir=" + base,
	}, asRoot...)
	install = append(install, innodb...)
	if err := owner.run(base, installDB, install...); err != nil {
		return nil, err
	}

	for attempt := 1; ; attempt++ {
		if m.Port, err = freePort(); err != nil {
			return nil, err
		}
		args := append([]string{
			"--no-defaults",
			"--datadir=" + m.DataDir,
			"--tmpdir=" + base,
			"--socket=" + m.Socket,
			"--pid-file=" + filepath.Join(base, "mysqld.pid"),
			"--log-error=" + m.LogFile,
			"--bind-address=" + Host,
			"--port=" + strconv.Itoa(m.Port),
			"--skip-networking=0",
			"--skip-name-resolve",
			"--ssl-ca=" + filepath.Join(base, "server.cas"),
			"--ssl-cert=" + filepath.Join(base, "server.crt"),
			"--ssl-key=" + filepath.Join(base, "server.key"),
			"--require-secure-transport=ON",
			"--max-allowed-packet=256M",
			"--max-connections=200",
			"--character-set-server=utf8mb4",
			"--collation-server=utf8mb4_general_ci",
			"--innodb-fast-shutdown=2", // stop without flushing; the data is thrown away
		}, asRoot...)
		args = append(args, innodb...)
		args = append(args, settingArgs(opts.Settings)...)
		cmd := owner.command(base, mariadbd, args...)
		if m.proc, err = StartProcess(cmd, m.LogFile, syscall.SIGKILL); err != nil {
			return nil, err
		}
		err = waitReady(m.proc, "MariaDB", m.ping)
		if err == nil {
			break
		}
		m.proc.Stop(syscall.SIGKILL, stopTimeout)
		if attempt == 2 || !addressInUse(LogTail(m.LogFile, 20)) {
			return nil, fmt.Errorf("dbtest: %v; server log %s ends:\n%s", err, m.LogFile, LogTail(m.LogFile, 30))
		}
	}
	if err := m.createObjects(opts); err != nil {
		return nil, fmt.Errorf("%v; server log ends:\n%s", err, LogTail(m.LogFile, 30))
	}
	return m, nil
}

// settingArgs turns Options.Settings into mariadbd options, sorted so the
// command line is stable.
func settingArgs(settings map[string]string) []string {
	args := make([]string, 0, len(settings))
	for name, value := range settings {
		args = append(args, "--"+strings.TrimPrefix(name, "--")+"="+value)
	}
	sort.Strings(args)
	return args
}

func (m *MariaDB) ping(ctx context.Context) error {
	conn, err := mysql.NewConnector(m.AdminConfig(""))
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	return db.PingContext(ctx)
}

// createObjects removes the accounts the install made besides
// root@localhost (some log in over TCP without a password) and creates the
// users and databases of opts.
func (m *MariaDB) createObjects(opts Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := openMySQLErr(m.AdminConfig(""))
	if err != nil {
		return fmt.Errorf("dbtest: connect to MariaDB as root: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.Version); err != nil {
		return fmt.Errorf("dbtest: MariaDB: SELECT VERSION(): %w", err)
	}
	var stmts []string
	rows, err := db.QueryContext(ctx, "SELECT User, Host FROM mysql.user WHERE User = '' OR (User = ? AND Host <> 'localhost')", MariaDBSuperuser)
	if err != nil {
		return fmt.Errorf("dbtest: MariaDB: list the installed accounts: %w", err)
	}
	for rows.Next() {
		var user, host string
		if err := rows.Scan(&user, &host); err != nil {
			rows.Close()
			return fmt.Errorf("dbtest: MariaDB: list the installed accounts: %w", err)
		}
		stmts = append(stmts, "DROP USER "+accountName(user, host))
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("dbtest: MariaDB: list the installed accounts: %w", err)
	}
	for _, u := range opts.Users {
		stmts = append(stmts, "CREATE USER "+accountName(u, "%")+" REQUIRE SUBJECT "+sqlString("/CN="+u))
	}
	for _, d := range opts.Databases {
		stmts = append(stmts, "CREATE DATABASE "+sqlIdent(d))
		for _, u := range opts.Users {
			stmts = append(stmts, "GRANT ALL ON "+sqlIdent(d)+".* TO "+accountName(u, "%"))
		}
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("dbtest: MariaDB: %s: %w", s, err)
		}
	}
	return nil
}

// accountName is a MariaDB account name, 'user'@'host'.
func accountName(user, host string) string { return sqlString(user) + "@" + sqlString(host) }

// sqlString is a MariaDB string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// sqlIdent is a MariaDB quoted identifier.
func sqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
