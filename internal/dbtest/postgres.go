package dbtest

import (
	"context"
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

	"github.com/jackc/pgx/v5"
)

// PostgresSuperuser is the superuser of a harness PostgreSQL; it connects
// only over the server's unix socket, without a password.
const PostgresSuperuser = "postgres"

// Postgres is a running throwaway PostgreSQL server.
type Postgres struct {
	Host      string // "127.0.0.1"
	Port      int    // the TCP port, also the unix socket's number
	Version   string // major version, e.g. "15"
	BinDir    string // where initdb and postgres were found
	DataDir   string
	SocketDir string // the directory holding the unix socket
	CAFile    string // the CA certificates (a copy of PREFIX.cas) clients verify the server with
	LogFile   string // the server's log

	base  string // the directory holding everything above; removed at cleanup
	proc  *Process
	owner account

	stopOnce sync.Once
	stopErr  error
}

// StartPostgres starts a PostgreSQL server configured by opts and stops it,
// removing its files, when the test ends. The server listens on 127.0.0.1
// only, accepts TCP connections only over TLS with a client certificate
// from a CA in PREFIX.cas whose CN names the user (pg_hba `cert
// clientcert=verify-full`), and lets the superuser in over its unix socket.
// A missing installation skips the test (fails with
// PORTCULLIS_REQUIRE_DB=1).
func StartPostgres(t testing.TB, opts Options) *Postgres {
	t.Helper()
	started := time.Now()
	p, err := startPostgres(opts)
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		if err := p.close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("dbtest: PostgreSQL %s ready on %s in %v", p.Version, p.Addr(), time.Since(started).Round(time.Millisecond))
	return p
}

// Addr is the server's TCP address, "127.0.0.1:PORT".
func (p *Postgres) Addr() string { return fmt.Sprintf("%s:%d", p.Host, p.Port) }

// DSN is a libpq keyword/value connection string (for pgx and psql) that
// logs in as user to database over TLS with the client certificate in
// certFile/keyFile, verifying the server (sslmode=verify-full) against
// CAFile.
func (p *Postgres) DSN(user, database, certFile, keyFile string) string {
	return conninfo(
		"host", p.Host, "port", strconv.Itoa(p.Port), "user", user, "dbname", database,
		"sslmode", "verify-full", "sslrootcert", p.CAFile, "sslcert", certFile, "sslkey", keyFile,
		"connect_timeout", "10",
	)
}

// AdminDSN is a connection string for the superuser over the unix socket;
// an empty database means "postgres".
func (p *Postgres) AdminDSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	return conninfo("host", p.SocketDir, "port", strconv.Itoa(p.Port), "user", PostgresSuperuser,
		"dbname", database, "sslmode", "disable", "connect_timeout", "10")
}

// Connect logs in as user to database with pgx over TLS with the client
// certificate in certFile/keyFile; the connection is closed when the test
// ends.
func (p *Postgres) Connect(t testing.TB, user, database, certFile, keyFile string) *pgx.Conn {
	t.Helper()
	return connectPgx(t, p.DSN(user, database, certFile, keyFile))
}

// Admin connects as the superuser to database ("" means "postgres") over
// the unix socket; the connection is closed when the test ends.
func (p *Postgres) Admin(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	return connectPgx(t, p.AdminDSN(database))
}

// Exec runs sql as the superuser in database ("" means "postgres").
func (p *Postgres) Exec(t testing.TB, database, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSN(database))
	if err != nil {
		t.Fatalf("dbtest: connect to PostgreSQL as superuser: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("dbtest: PostgreSQL: %s: %v", sql, err)
	}
}

// LogTail returns the last lines of the server's log.
func (p *Postgres) LogTail(lines int) string { return LogTail(p.LogFile, lines) }

// Stop stops the server at once (immediate shutdown) and waits until the
// postmaster and all its children have exited. Later calls do nothing; the
// files stay until the test ends.
func (p *Postgres) Stop() error {
	p.stopOnce.Do(func() {
		// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster
		// quits its children, waits for them and exits.
		p.stopErr = p.proc.Stop(syscall.SIGQUIT, stopTimeout)
	})
	return p.stopErr
}

func (p *Postgres) close() error {
	err := p.Stop()
	if rmErr := os.RemoveAll(p.base); rmErr != nil && err == nil {
		err = fmt.Errorf("dbtest: remove the PostgreSQL directory: %w", rmErr)
	}
	return err
}

func connectPgx(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("dbtest: connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// findPostgres returns the newest PostgreSQL server installation:
// /usr/lib/postgresql/<version>/bin on Debian, else initdb on PATH.
func findPostgres() (binDir, version string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, filepath.Base(filepath.Dir(d)), nil
		}
	}
	initdb, err := lookBinary("initdb", "postgresql")
	if err != nil {
		return "", "", err
	}
	d := filepath.Dir(initdb)
	if !isExecutable(filepath.Join(d, "postgres")) {
		return "", "", &unavailableError{fmt.Sprintf("dbtest: postgres is not installed next to %s; install the Debian package postgresql", initdb)}
	}
	return d, "", nil
}

// versionOf is the number in /usr/lib/postgresql/<n>/bin, 0 if none.
func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func startPostgres(opts Options) (_ *Postgres, err error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	binDir, version, err := findPostgres()
	if err != nil {
		return nil, err
	}
	owner, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	base, err := baseDir("dbtest-pg-", owner)
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		Host:      Host,
		Version:   version,
		BinDir:    binDir,
		DataDir:   filepath.Join(base, "data"),
		SocketDir: base,
		CAFile:    filepath.Join(base, "ca.crt"),
		LogFile:   filepath.Join(base, "data", "server.log"),
		base:      base,
		owner:     owner,
	}
	defer func() {
		if err != nil {
			if p.proc != nil {
				p.Stop()
			}
			os.RemoveAll(base)
		}
	}()

	// initdb --no-sync: the data directory is thrown away, so skip fsync.
	err = owner.run(base, filepath.Join(binDir, "initdb"),
		"-D", p.DataDir, "-U", PostgresSuperuser, "--auth-local=trust", "--auth-host=reject",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		return nil, err
	}
	if err := p.configure(opts); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if p.Port, err = freePort(); err != nil {
			return nil, err
		}
		cmd := owner.command(base, filepath.Join(binDir, "postgres"), "-D", p.DataDir, "-p", strconv.Itoa(p.Port))
		if p.proc, err = StartProcess(cmd, p.LogFile, syscall.SIGQUIT); err != nil {
			return nil, err
		}
		err = waitReady(p.proc, "PostgreSQL", p.ping)
		if err == nil {
			break
		}
		p.proc.Stop(syscall.SIGQUIT, stopTimeout)
		if attempt == 2 || !addressInUse(LogTail(p.LogFile, 20)) {
			return nil, fmt.Errorf("dbtest: %v; server log %s ends:\n%s", err, p.LogFile, LogTail(p.LogFile, 30))
		}
	}
	if err := p.createObjects(opts); err != nil {
		return nil, fmt.Errorf("%v; server log ends:\n%s", err, LogTail(p.LogFile, 30))
	}
	return p, nil
}

// configure writes the TLS files, postgresql.conf additions and pg_hba.conf.
func (p *Postgres) configure(opts Options) error {
	files := []struct {
		src, dst string
		perm     os.FileMode
	}{
		{opts.CertPrefix + ".crt", filepath.Join(p.DataDir, "server.crt"), 0o644},
		{opts.CertPrefix + ".key", filepath.Join(p.DataDir, "server.key"), 0o600}, // PostgreSQL refuses a key others can read
		{opts.CertPrefix + ".cas", filepath.Join(p.DataDir, "server.cas"), 0o644},
		{opts.CertPrefix + ".cas", p.CAFile, 0o644},
	}
	for _, f := range files {
		if err := copyFile(f.src, f.dst, f.perm, p.owner); err != nil {
			return err
		}
	}

	settings := [][2]string{
		{"listen_addresses", Host},
		{"unix_socket_directories", p.SocketDir},
		{"ssl", "on"},
		{"ssl_cert_file", "server.crt"},
		{"ssl_key_file", "server.key"},
		{"ssl_ca_file", "server.cas"},
		{"ssl_min_protocol_version", "TLSv1.2"},
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"shared_buffers", "32MB"},
		{"max_connections", "200"},
		{"huge_pages", "off"},
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
		{"log_line_prefix", "%m [%p] %q%u@%d "},
	}
	names := make([]string, 0, len(opts.Settings))
	for name := range opts.Settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		settings = append(settings, [2]string{name, opts.Settings[name]})
	}
	var conf strings.Builder
	conf.WriteString("\n# dbtest\n")
	for _, s := range settings {
		fmt.Fprintf(&conf, "%s = '%s'\n", s[0], strings.ReplaceAll(s[1], "'", "''"))
	}
	confPath := filepath.Join(p.DataDir, "postgresql.conf")
	f, err := os.OpenFile(confPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	_, err = f.WriteString(conf.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dbtest: write postgresql.conf: %w", err)
	}

	// The superuser over the unix socket; everyone else over TLS with a
	// client certificate. No plaintext host lines.
	hba := "# dbtest\n" +
		"local all " + PostgresSuperuser + " trust\n" +
		"hostssl all all 127.0.0.1/32 cert clientcert=verify-full\n" +
		"hostssl all all ::1/128 cert clientcert=verify-full\n"
	hbaPath := filepath.Join(p.DataDir, "pg_hba.conf")
	if err := os.WriteFile(hbaPath, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("dbtest: write pg_hba.conf: %w", err)
	}
	return p.owner.chown(hbaPath)
}

// ping connects as the superuser over the unix socket.
func (p *Postgres) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.AdminDSN(""))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// createObjects creates the users and databases of opts.
func (p *Postgres) createObjects(opts Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec := func(database string, stmts ...string) error {
		conn, err := pgx.Connect(ctx, p.AdminDSN(database))
		if err != nil {
			return fmt.Errorf("dbtest: connect to PostgreSQL as superuser: %w", err)
		}
		defer conn.Close(context.Background())
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("dbtest: PostgreSQL: %s: %w", s, err)
			}
		}
		return nil
	}
	ident := func(s string) string { return pgx.Identifier{s}.Sanitize() }

	owner := opts.Owner
	if owner == "" && len(opts.Users) > 0 {
		owner = opts.Users[0]
	}
	var stmts []string
	for _, u := range opts.Users {
		stmts = append(stmts, "CREATE ROLE "+ident(u)+" LOGIN")
	}
	for _, d := range opts.Databases {
		s := "CREATE DATABASE " + ident(d)
		if owner != "" {
			s += " OWNER " + ident(owner)
		}
		stmts = append(stmts, s)
		for _, u := range opts.Users {
			stmts = append(stmts, "GRANT ALL ON DATABASE "+ident(d)+" TO "+ident(u))
		}
	}
	if err := exec("", stmts...); err != nil {
		return err
	}
	// Since PostgreSQL 15 only the database owner may create objects in
	// schema public; let every user.
	for _, d := range opts.Databases {
		stmts = stmts[:0]
		for _, u := range opts.Users {
			stmts = append(stmts, "GRANT ALL ON SCHEMA public TO "+ident(u))
		}
		if len(stmts) == 0 {
			continue
		}
		if err := exec(d, stmts...); err != nil {
			return err
		}
	}
	return nil
}

// conninfo formats libpq keyword/value pairs, quoting values as needed.
func conninfo(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := kv[i+1]
		b.WriteString(kv[i])
		b.WriteByte('=')
		if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
			b.WriteString(v)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		b.WriteByte('\'')
	}
	return b.String()
}
