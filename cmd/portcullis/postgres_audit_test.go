package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
)

// This file holds what the PostgreSQL matrix tests share: connecting as a
// user with pgx, psql and pgbench through the cluster, and reading the
// audit log back one session at a time.

// auditEvent is one event of the audit log as JSON.
type auditEvent map[string]any

func (e auditEvent) str(key string) string {
	s, _ := e[key].(string)
	return s
}

func (e auditEvent) ok() bool {
	b, _ := e["success"].(bool)
	return b
}

// describe is a one-line summary of a database-session event: what it
// records, without the fields every event carries.
func (e auditEvent) describe() string {
	typ := e.str("event")
	switch typ {
	case "db.session.start":
		if !e.ok() {
			return "start refused: " + e.str("error")
		}
		return "start"
	case "db.session.end":
		return "end"
	case "db.session.query":
		if !e.ok() {
			return "query refused: " + e.str("error")
		}
		return "query: " + e.str("query")
	case "db.session.postgres.parse":
		return "parse: " + e.str("query")
	case "db.session.postgres.bind":
		return fmt.Sprintf("bind: %s %s", e.str("query"), e.params())
	case "db.session.postgres.execute":
		return "execute: " + e.str("query")
	case "db.session.postgres.close":
		return "close " + e.str("object")
	}
	return typ
}

// params renders a bind event's parameters: [a, \x01, NULL].
func (e auditEvent) params() string {
	list, _ := e["parameters"].([]any)
	out := make([]string, len(list))
	for i, p := range list {
		if p == nil {
			out[i] = "NULL"
		} else {
			out[i] = fmt.Sprint(p)
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func describeAll(events []auditEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.describe()
	}
	return out
}

// searchAudit returns the events of q (newest up to the maximum limit,
// oldest first) once cond holds of them; what names the wait.
func (c *pgCluster) searchAudit(t *testing.T, q authclient.AuditQuery, what string, cond func([]auditEvent) bool) []auditEvent {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = authclient.MaxAuditSearchLimit
	}
	var out []auditEvent
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := c.admin.SearchAuditEvents(context.Background(), q)
		lastErr = err
		if err == nil {
			out = out[:0]
			for _, r := range raw {
				var e auditEvent
				if json.Unmarshal(r, &e) == nil {
					out = append(out, e)
				}
			}
			if cond(out) {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in the audit log (last search: %v); found:\n%s",
				what, lastErr, strings.Join(describeAll(out), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sessions runs fn and returns the database sessions of user that
// started while it ran: want sessions, each one's events in order, from
// db.session.start to db.session.end, the sessions in the order they
// started. It waits until each has ended (or was refused), so fn must
// close its connections. Sessions that started before fn are left out,
// even if their last events are recorded while fn runs.
func (c *pgCluster) sessions(t *testing.T, user string, want int, fn func()) [][]auditEvent {
	t.Helper()
	started := time.Now()
	fn()
	var sessions [][]auditEvent
	c.searchAudit(t, authclient.AuditQuery{Types: []string{"db.session.*"}, User: user, From: started},
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
					// A session from before fn: each emitter records a
					// session's events in order, so a session whose
					// later events are in the log has its start there.
					continue
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
			if e.str("user") != user || e.str("db_service") == "" || e.str("db_protocol") != "postgres" {
				t.Errorf("event not attributed to %s on a PostgreSQL database: %v", user, e)
			}
		}
	}
	return sessions
}

// checkSession compares a session's events, summarized by describe, with
// want (start and end included).
func checkSession(t *testing.T, got []auditEvent, want ...string) {
	t.Helper()
	if g := describeAll(got); !slices.Equal(g, want) {
		t.Errorf("audited session:\n\t%s\nwant exactly:\n\t%s", strings.Join(g, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// pgxConfig is a pgx configuration that reaches the database of u's
// route through the proxy's PostgreSQL port: the route certificate and the
// login's key, the proxy verified against the host CAs.
func (u *pgUser) pgxConfig(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	cfg := u.cfg
	kv := []string{
		"host", cfg.Host, "port", fmt.Sprint(cfg.Port), "user", cfg.DBUser, "dbname", cfg.DBName,
		"sslmode", "verify-full", "sslrootcert", cfg.CAFile, "sslcert", cfg.CertFile, "sslkey", cfg.KeyFile,
		"connect_timeout", "20",
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s='%s' ", kv[i], strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[i+1]))
	}
	pc, err := pgx.ParseConfig(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// connect opens a pgx connection as u through the proxy.
func (u *pgUser) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	return connectWith(t, u.pgxConfig(t))
}

func connectWith(t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgx through the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// psql runs psql as u through the proxy with the connection settings of
// cfg (u's own when nil) and returns its standard output and error.
func (u *pgUser) psql(t *testing.T, cfg *client.DatabaseConfig, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	x := u.psqlCmd(t, cfg, args...)
	var out, errOut strings.Builder
	x.Stdout, x.Stderr = &out, &errOut
	timer := time.AfterFunc(2*time.Minute, func() { x.Process.Kill() })
	defer timer.Stop()
	err = x.Run()
	return out.String(), errOut.String(), err
}

func (u *pgUser) psqlCmd(t *testing.T, cfg *client.DatabaseConfig, args ...string) *exec.Cmd {
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
	// No PG* variable or service file from the machine may redirect psql.
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "PGCONNECT_TIMEOUT=20"}
	return x
}

// isPgError reports whether err is a PostgreSQL error with code.
func isPgError(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
