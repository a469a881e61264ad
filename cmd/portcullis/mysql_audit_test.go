package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// This file holds what the MySQL matrix tests share: connecting as a user
// with go-sql-driver and the mariadb client through the cluster, and
// reading the audit log back one session at a time (with the PostgreSQL
// tests' auditEvent and searchAudit).

// describeMy is auditEvent.describe with the MySQL protocol steps.
func describeMy(e auditEvent) string {
	switch e.str("event") {
	case "db.session.mysql.statements.prepare":
		return "prepare: " + e.str("query")
	case "db.session.mysql.statements.execute":
		return fmt.Sprintf("execute: %s %s", e.str("query"), e.params())
	case "db.session.mysql.statements.close":
		return "close: " + e.str("query")
	case "db.session.mysql.statements.reset":
		return "reset: " + e.str("query")
	case "db.session.mysql.statements.fetch":
		return "fetch: " + e.str("query")
	case "db.session.mysql.statements.send_long_data":
		return fmt.Sprintf("send_long_data: %s (%v bytes)", e.str("query"), e["data_size"])
	case "db.session.mysql.init_db", "db.session.mysql.create_db", "db.session.mysql.drop_db":
		return strings.TrimPrefix(e.str("event"), "db.session.mysql.") + ": " + e.str("schema_name")
	case "db.session.mysql.process_kill":
		return fmt.Sprintf("process_kill: %v", e["process_id"])
	}
	return e.describe()
}

func describeAllMy(events []auditEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = describeMy(e)
	}
	return out
}

// checkMySession compares a session's events, summarized by describeMy,
// with want (start and end included).
func checkMySession(t *testing.T, got []auditEvent, want ...string) {
	t.Helper()
	if g := describeAllMy(got); !slices.Equal(g, want) {
		t.Errorf("audited session:\n\t%s\nwant exactly:\n\t%s", strings.Join(g, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// sessions runs fn and returns the MySQL sessions of user that started
// while it ran, each one's events in order from db.session.start to
// db.session.end (or the refused start alone), the sessions in the order
// they started; see pgCluster.sessions, whose rules it follows.
func (c *myCluster) sessions(t *testing.T, user string, want int, fn func()) [][]auditEvent {
	t.Helper()
	started := time.Now()
	fn()
	var sessions [][]auditEvent
	search := &pgCluster{admin: c.admin} // searchAudit needs only the admin client
	search.searchAudit(t, authclient.AuditQuery{Types: []string{"db.session.*"}, User: user, From: started},
		fmt.Sprintf("%d whole sessions of %s", want, user), func(events []auditEvent) bool {
			bySID := map[string][]auditEvent{}
			var order []string
			for _, e := range events {
				sid := e.str("sid")
				if _, seen := bySID[sid]; !seen {
					order = append(order, sid)
				}
				bySID[sid] = append(bySID[sid], e)
			}
			sessions = sessions[:0]
			for _, sid := range order {
				s := bySID[sid]
				first, last := s[0], s[len(s)-1]
				if first.str("event") != "db.session.start" {
					continue // a session from before fn
				}
				if first.ok() && last.str("event") != "db.session.end" {
					return false // not ended yet
				}
				sessions = append(sessions, s)
			}
			return len(sessions) == want
		})
	for _, s := range sessions {
		for _, e := range s {
			if e.str("user") != user || e.str("db_user") != user || e.str("db_service") == "" || e.str("db_protocol") != "mysql" {
				t.Errorf("event not attributed to %s (as db user %[1]s) on a MySQL database: %v", user, e)
			}
		}
	}
	return sessions
}

// waitRunning waits until a session runs query in MariaDB (seen by root,
// straight on the server) and returns the database's ID of that session.
func (c *myCluster) waitRunning(t *testing.T, query string) int64 {
	t.Helper()
	admin := c.db.Admin(t)
	var id int64
	waitFor(t, "the query to run: "+query, 30*time.Second, func() bool {
		err := admin.QueryRowContext(context.Background(), "select id from information_schema.processlist where info = ?", query).Scan(&id)
		return err == nil
	})
	return id
}

// driverConfig is a go-sql-driver configuration that reaches the database
// of cfg (u's route for my1 when nil) through the proxy's MySQL port with
// the route certificate, the proxy verified against the host CAs.
func (u *myUser) driverConfig(t *testing.T, cfg *client.DatabaseConfig) *mysql.Config {
	t.Helper()
	if cfg == nil {
		cfg = u.cfg
	}
	pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	mc := mysql.NewConfig()
	mc.User, mc.DBName = cfg.DBUser, cfg.DBName
	mc.Net, mc.Addr = "tcp", cfg.Addr()
	mc.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: cfg.Host}
	mc.Timeout = 20 * time.Second
	return mc
}

// openDB opens a database/sql handle with mc, closed when the test ends.
func openDB(t *testing.T, mc *mysql.Config) *sql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// myConn opens one session with mc: a database/sql connection whose Close
// ends the session (COM_QUIT).
func myConn(t *testing.T, mc *mysql.Config) *sql.Conn {
	t.Helper()
	db := openDB(t, mc)
	db.SetMaxIdleConns(0) // a connection returned to the pool is closed
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("go-sql-driver through the proxy: %v", err)
	}
	return c
}

// mustExecMy runs query (with args) on c.
func mustExecMy(t *testing.T, c *sql.Conn, query string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// isMyError reports whether err is a MySQL error with code.
func isMyError(err error, code uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code
}

// requireMariaDBClient skips the test (fails with PORTCULLIS_REQUIRE_DB=1)
// when neither mysql nor mariadb is installed.
func requireMariaDBClient(t *testing.T) {
	t.Helper()
	_, err1 := exec.LookPath("mariadb")
	_, err2 := exec.LookPath("mysql")
	if err1 != nil && err2 != nil {
		if os.Getenv(dbtest.RequireEnv) == "1" {
			t.Fatal("neither mariadb nor mysql is installed (Debian package mariadb-client)")
		}
		t.Skip("neither mariadb nor mysql is installed (Debian package mariadb-client)")
	}
}

// mariadbCmd is the mysql or mariadb client as `pcl db connect` starts it
// for cfg (u's route for my1 when nil), with args after the connection
// arguments, and no option file of the machine's user.
func (u *myUser) mariadbCmd(t *testing.T, cfg *client.DatabaseConfig, args ...string) *exec.Cmd {
	t.Helper()
	if cfg == nil {
		cfg = u.cfg
	}
	cmd, err := cfg.Command(args)
	if err != nil {
		t.Fatal(err)
	}
	x, err := cmd.Cmd()
	if err != nil {
		t.Fatal(err)
	}
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home}
	return x
}

// mariadb runs the client (see mariadbCmd) and returns its standard
// output and error.
func (u *myUser) mariadb(t *testing.T, cfg *client.DatabaseConfig, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	x := u.mariadbCmd(t, cfg, args...)
	var out, errOut strings.Builder
	x.Stdout, x.Stderr = &out, &errOut
	timer := time.AfterFunc(2*time.Minute, func() { x.Process.Kill() })
	defer timer.Stop()
	err = x.Run()
	return out.String(), errOut.String(), err
}
