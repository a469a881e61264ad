package dbtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clientCmd runs a database command-line client and returns its trimmed
// output; err is non-nil when it exits with a failure.
func clientCmd(t *testing.T, binary, debianPackage string, args ...string) (string, error) {
	t.Helper()
	path, err := lookBinary(binary, debianPackage)
	if err != nil {
		fail(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func psql(t *testing.T, dsn, sql string) (string, error) {
	t.Helper()
	return clientCmd(t, "psql", "postgresql-client", "--no-psqlrc", "--no-align", "--tuples-only",
		"--set=ON_ERROR_STOP=1", "--command="+sql, dsn)
}

func mariadbCLI(t *testing.T, args []string, sql string) (string, error) {
	t.Helper()
	return clientCmd(t, "mariadb", "mariadb-client", append(args, "--batch", "--skip-column-names", "--execute="+sql)...)
}

// refused fails the test unless err is a refusal whose message contains
// one of wants (so that a server that is simply down does not pass).
func refused(t *testing.T, what string, err error, out string, wants ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: connected, want refused (output %q)", what, out)
		return
	}
	msg := err.Error() + " " + out
	for _, w := range wants {
		if strings.Contains(msg, w) {
			return
		}
	}
	t.Errorf("%s: refused with %q, want a message containing one of %q", what, msg, wants)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	dbCA := NewDatabaseCA(t)
	p := StartPostgres(t, Options{
		CertPrefix: ServerFiles(t, dbCA),
		Users:      []string{"alice", "bob"},
		Databases:  []string{"app"},
		Settings:   map[string]string{"work_mem": "7MB"},
	})
	aliceCert, aliceKey := ClientFiles(t, dbCA, "alice")
	bobCert, bobKey := ClientFiles(t, dbCA, "bob")
	otherCert, otherKey := ClientFiles(t, NewDatabaseCA(t), "alice")
	ctx := context.Background()

	t.Run("pgx", func(t *testing.T) {
		conn := p.Connect(t, "alice", "app", aliceCert, aliceKey)
		var user, db, workMem string
		var one int
		var ssl bool
		err := conn.QueryRow(ctx, `SELECT 1, current_user, current_database(), current_setting('work_mem'),
			(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())`).Scan(&one, &user, &db, &workMem, &ssl)
		if err != nil {
			t.Fatal(err)
		}
		if one != 1 || user != "alice" || db != "app" || !ssl {
			t.Errorf("got 1=%d current_user=%q database=%q ssl=%v, want 1, alice, app, true", one, user, db, ssl)
		}
		if workMem != "7MB" {
			t.Errorf("work_mem = %q, want Options.Settings' 7MB", workMem)
		}
	})

	t.Run("psql", func(t *testing.T) {
		out, err := psql(t, p.DSN("alice", "app", aliceCert, aliceKey), "SELECT current_user")
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		if out != "alice" {
			t.Errorf("psql: current_user = %q, want alice", out)
		}
	})

	t.Run("second user writes", func(t *testing.T) {
		conn := p.Connect(t, "bob", "app", bobCert, bobKey)
		if _, err := conn.Exec(ctx, "CREATE TABLE bob_t (id int); INSERT INTO bob_t VALUES (1)"); err != nil {
			t.Fatalf("bob cannot write in app: %v", err)
		}
		var owner string
		if err := conn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'").Scan(&owner); err != nil {
			t.Fatal(err)
		}
		if owner != "alice" {
			t.Errorf("app is owned by %q, want the first user alice", owner)
		}
	})

	t.Run("admin", func(t *testing.T) {
		p.Exec(t, "app", "CREATE TABLE admin_t (id int)")
		var user string
		if err := p.Admin(t, "app").QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
			t.Fatal(err)
		}
		if user != PostgresSuperuser {
			t.Errorf("admin current_user = %q, want %s", user, PostgresSuperuser)
		}
	})

	t.Run("other CA refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, p.DSN("alice", "app", otherCert, otherKey))
		// Under TLS 1.3 the client finishes its side of the handshake
		// before the server checks its certificate, so the server's alert
		// can lose the race with the client's first write and the client
		// sees only a reset. The server's log says why either way.
		if err != nil && strings.Contains(err.Error(), "connection reset") {
			if !strings.Contains(p.LogTail(50), "certificate verify failed") {
				t.Errorf("pgx was reset, but the server log has no certificate failure:\n%s", p.LogTail(50))
			}
		} else {
			refused(t, "pgx", err, "", "unknown certificate authority", "certificate verify failed")
		}
		out, err := psql(t, p.DSN("alice", "app", otherCert, otherKey), "SELECT 1")
		refused(t, "psql", err, out, "unknown ca", "certificate verify failed")
	})

	t.Run("wrong user refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, p.DSN("alice", "app", bobCert, bobKey))
		refused(t, "pgx with bob's certificate as alice", err, "", "certificate authentication failed")
	})

	t.Run("no client certificate refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, conninfo("host", p.Host, "port", strconv.Itoa(p.Port), "user", "alice",
			"dbname", "app", "sslmode", "verify-full", "sslrootcert", p.CAFile))
		refused(t, "pgx", err, "", "certificate")
	})

	t.Run("plaintext refused", func(t *testing.T) {
		dsn := conninfo("host", p.Host, "port", strconv.Itoa(p.Port), "user", "alice", "dbname", "app", "sslmode", "disable")
		_, err := pgx.Connect(ctx, dsn)
		refused(t, "pgx", err, "", "no encryption")
		out, err := psql(t, dsn, "SELECT 1")
		refused(t, "psql", err, out, "no encryption")
	})
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	dbCA := NewDatabaseCA(t)
	m := StartMariaDB(t, Options{
		CertPrefix: ServerFiles(t, dbCA),
		Users:      []string{"alice", "bob"},
		Databases:  []string{"app"},
		Settings:   map[string]string{"max-user-connections": "77"},
	})
	aliceCert, aliceKey := ClientFiles(t, dbCA, "alice")
	bobCert, bobKey := ClientFiles(t, dbCA, "bob")
	otherCert, otherKey := ClientFiles(t, NewDatabaseCA(t), "alice")

	t.Run("go-sql-driver", func(t *testing.T) {
		db := m.Connect(t, "alice", "app", aliceCert, aliceKey)
		var one, maxUserConns int
		var user, dbName, cipher string
		if err := db.QueryRow("SELECT 1, current_user(), database(), @@max_user_connections").Scan(&one, &user, &dbName, &maxUserConns); err != nil {
			t.Fatal(err)
		}
		var name string
		if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
			t.Fatal(err)
		}
		if one != 1 || user != "alice@%" || dbName != "app" || cipher == "" {
			t.Errorf("got 1=%d current_user=%q database=%q cipher=%q, want 1, alice@%%, app, a TLS cipher", one, user, dbName, cipher)
		}
		if maxUserConns != 77 {
			t.Errorf("max_user_connections = %d, want Options.Settings' 77", maxUserConns)
		}
	})

	t.Run("mariadb CLI", func(t *testing.T) {
		out, err := mariadbCLI(t, m.ClientArgs("alice", "app", aliceCert, aliceKey), "SELECT current_user()")
		if err != nil {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		if out != "alice@%" {
			t.Errorf("mariadb: current_user() = %q, want alice@%%", out)
		}
	})

	t.Run("second user writes", func(t *testing.T) {
		db := m.Connect(t, "bob", "app", bobCert, bobKey)
		if _, err := db.Exec("CREATE TABLE bob_t (id int)"); err != nil {
			t.Fatalf("bob cannot write in app: %v", err)
		}
	})

	t.Run("admin", func(t *testing.T) {
		m.Exec(t, "CREATE TABLE app.admin_t (id int)")
		var n int
		if err := m.Admin(t).QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d root accounts reachable over TCP, want 0", n)
		}
	})

	t.Run("other CA refused", func(t *testing.T) {
		// With TLS 1.3 the server checks the client certificate after
		// the client has finished its handshake, so the client often sees
		// only the connection close; with TLS 1.2 it always gets the alert.
		cfg := m.Config("alice", "app", m.TLSConfig(t, otherCert, otherKey))
		cfg.Logger = quietLogger{}
		_, err := openMySQLErr(cfg)
		refused(t, "go-sql-driver", err, "", "unknown certificate authority", "bad connection", "invalid connection", "connection reset", "broken pipe", "EOF")
		cfg.TLS.MaxVersion = tls.VersionTLS12
		_, err = openMySQLErr(cfg)
		refused(t, "go-sql-driver TLS 1.2", err, "", "unknown certificate authority")
		out, err := mariadbCLI(t, m.ClientArgs("alice", "app", otherCert, otherKey), "SELECT 1")
		refused(t, "mariadb", err, out, "unknown ca", "Lost connection")
		out, err = mariadbCLI(t, append(m.ClientArgs("alice", "app", otherCert, otherKey), "--tls-version=TLSv1.2"), "SELECT 1")
		refused(t, "mariadb TLS 1.2", err, out, "unknown ca")
	})

	t.Run("wrong user refused", func(t *testing.T) {
		_, err := openMySQLErr(m.Config("alice", "app", m.TLSConfig(t, bobCert, bobKey)))
		refused(t, "go-sql-driver with bob's certificate as alice", err, "", "Access denied")
	})

	t.Run("no client certificate refused", func(t *testing.T) {
		tlsConfig := m.TLSConfig(t, aliceCert, aliceKey)
		tlsConfig.Certificates = nil
		_, err := openMySQLErr(m.Config("alice", "app", tlsConfig))
		refused(t, "go-sql-driver", err, "", "Access denied")
	})

	t.Run("plaintext refused", func(t *testing.T) {
		_, err := openMySQLErr(m.Config("alice", "app", nil))
		refused(t, "go-sql-driver", err, "", "Access denied")
		// A user without REQUIRE passes the account's own check, so what
		// refuses it in plaintext is require_secure_transport (MariaDB
		// reports that as "Access denied" too), while TLS lets it in.
		m.Exec(t, "CREATE USER 'plain'@'%'")
		_, err = openMySQLErr(m.Config("plain", "", nil))
		refused(t, "go-sql-driver as plain", err, "", "Access denied")
		args := []string{"--no-defaults", "--protocol=TCP", "--host=" + m.Host, "--port=" + strconv.Itoa(m.Port), "--user=plain"}
		out, err := mariadbCLI(t, append(args, "--skip-ssl"), "SELECT 1")
		refused(t, "mariadb --skip-ssl as plain", err, out, "Access denied")

		tlsConfig := m.TLSConfig(t, aliceCert, aliceKey)
		tlsConfig.Certificates = nil
		db, err := openMySQLErr(m.Config("plain", "", tlsConfig))
		if err != nil {
			t.Fatalf("plain over TLS: %v; want it let in", err)
		}
		db.Close()
		out, err = mariadbCLI(t, append(args, "--ssl", "--ssl-ca="+m.CAFile, "--ssl-verify-server-cert"), "SELECT 1")
		if err != nil || out != "1" {
			t.Errorf("mariadb --ssl as plain: %q, %v; want it let in", out, err)
		}
	})
}

// TestStopLeavesNothing checks that a stopped server leaves no process,
// listener or directory behind.
func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	dbCA := NewDatabaseCA(t)
	prefix := ServerFiles(t, dbCA)
	aliceCert, aliceKey := ClientFiles(t, dbCA, "alice")

	var pgBase, myBase string
	t.Run("postgres", func(t *testing.T) {
		p := StartPostgres(t, Options{CertPrefix: prefix, Users: []string{"alice"}})
		pgBase = p.base
		p.Connect(t, "alice", "postgres", aliceCert, aliceKey) // a backend for Stop to end
		postmaster := p.proc.cmd.Process.Pid
		children := childPIDs(t, postmaster)
		if len(children) == 0 {
			t.Fatalf("postmaster %d has no child processes", postmaster)
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		for _, pid := range append(children, postmaster) {
			if alive(pid) {
				t.Errorf("process %d is still running after Stop", pid)
			}
		}
		if _, err := pgx.Connect(context.Background(), p.AdminDSN("")); err == nil {
			t.Error("the server still accepts connections after Stop")
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		m := StartMariaDB(t, Options{CertPrefix: prefix})
		myBase = m.base
		pid := m.proc.cmd.Process.Pid
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
		if alive(pid) {
			t.Errorf("mariadbd %d is still running after Stop", pid)
		}
	})
	for _, dir := range []string{pgBase, myBase} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after the test (stat: %v)", dir, err)
		}
	}
}

// quietLogger drops go-sql-driver/mysql's log lines about connections the
// server is expected to cut.
type quietLogger struct{}

func (quietLogger) Print(...any) {}

func TestShared(t *testing.T) {
	t.Parallel()
	s := &Shared{Options: Options{Users: []string{"alice"}, Databases: []string{"app"}}}
	t.Cleanup(func() { s.Close() })
	p := s.Postgres(t)
	if again := s.Postgres(t); again != p {
		t.Fatal("Shared.Postgres started a second server")
	}
	cert, key := ClientFiles(t, s.CA(t), "alice")
	var user string
	if err := p.Connect(t, "alice", "app", cert, key).QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || user != "alice" {
		t.Fatalf("current_user = %q, %v; want alice", user, err)
	}
	pid := p.proc.cmd.Process.Pid
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("postmaster %d is still running after Close", pid)
	}
	for _, dir := range []string{p.base, s.dir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Close (stat: %v)", dir, err)
		}
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		var state string
		var ppid int
		if _, err := fmt.Sscan(rest, &state, &ppid); err != nil || ppid != pid {
			continue
		}
		child, err := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		if err == nil {
			pids = append(pids, child)
		}
	}
	return pids
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestOptionsCheck(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "server")
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{}, "CertPrefix is empty"},
		{Options{CertPrefix: prefix}, "CertPrefix"},
		{Options{CertPrefix: ServerFiles(t, NewDatabaseCA(t)), Users: []string{""}}, "Users"},
		{Options{CertPrefix: ServerFiles(t, NewDatabaseCA(t)), Databases: []string{""}}, "Databases"},
	} {
		err := tt.opts.check()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("check(%+v) = %v, want an error naming %s", tt.opts, err, tt.want)
		}
	}
}

// recorder is a testing.TB that records how fail ended the test.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatal(args ...any)                 { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }

func TestSkipOrFail(t *testing.T) {
	_, missing := lookBinary("dbtest-no-such-binary", "some-package", t.TempDir())
	if missing == nil || !strings.Contains(missing.Error(), "dbtest-no-such-binary") || !strings.Contains(missing.Error(), "some-package") {
		t.Fatalf("lookBinary error = %v, want one naming the binary and the package", missing)
	}

	t.Setenv(RequireEnv, "")
	r := &recorder{TB: t}
	fail(r, missing)
	if r.skipped == "" || r.fatal != "" {
		t.Errorf("without %s: skipped=%q fatal=%q, want a skip", RequireEnv, r.skipped, r.fatal)
	}

	t.Setenv(RequireEnv, "1")
	r = &recorder{TB: t}
	fail(r, missing)
	if r.fatal == "" || r.skipped != "" || !strings.Contains(r.fatal, "some-package") {
		t.Errorf("with %s=1: skipped=%q fatal=%q, want a failure naming the package", RequireEnv, r.skipped, r.fatal)
	}

	t.Setenv(RequireEnv, "")
	r = &recorder{TB: t}
	fail(r, fmt.Errorf("dbtest: initdb failed"))
	if r.fatal == "" || r.skipped != "" {
		t.Errorf("other error: skipped=%q fatal=%q, want a failure even without %s", r.skipped, r.fatal, RequireEnv)
	}
}

func TestConninfo(t *testing.T) {
	odd := `a b/it's\x`
	got := conninfo("host", "127.0.0.1", "sslmode", "disable", "application_name", odd, "password", "")
	want := `host=127.0.0.1 sslmode=disable application_name='a b/it\'s\\x' password=''`
	if got != want {
		t.Errorf("conninfo = %s, want %s", got, want)
	}
	cfg, err := pgx.ParseConfig(got)
	if err != nil {
		t.Fatalf("pgx cannot parse %s: %v", got, err)
	}
	if cfg.RuntimeParams["application_name"] != odd || cfg.Password != "" {
		t.Errorf("pgx read application_name=%q password=%q, want %q and empty", cfg.RuntimeParams["application_name"], cfg.Password, odd)
	}
}
