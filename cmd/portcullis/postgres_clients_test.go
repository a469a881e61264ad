package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// TestPostgresClientsThroughTheCluster drives real clients (pgx, psql,
// pgbench) through proxy -> reverse tunnel -> agent -> PostgreSQL, and
// checks that the audit log holds exactly what each session ran, as
// alice, in order.
func TestPostgresClientsThroughTheCluster(t *testing.T) {
	requirePsql(t)
	c := startPGCluster(t)
	alice := c.alice
	ctx := context.Background()

	t.Run("pgx simple queries", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			mustExec(t, conn, "create table items (id int primary key, name text, ok bool, score float8, data bytea, note text)")
			mustExec(t, conn, "insert into items values (1, 'one', true, 1.5, '\\xdead', null)")
			var name string
			if err := conn.QueryRow(ctx, "select name from items where id = 1", pgx.QueryExecModeSimpleProtocol).Scan(&name); err != nil || name != "one" {
				t.Errorf("select name: %q, %v", name, err)
			}
			conn.Close(ctx)
		})
		checkSession(t, s[0],
			"start",
			"query: create table items (id int primary key, name text, ok bool, score float8, data bytea, note text)",
			"query: insert into items values (1, 'one', true, 1.5, '\\xdead', null)",
			"query: select name from items where id = 1",
			"end")
	})

	t.Run("pgx prepared statements with text and binary parameters", func(t *testing.T) {
		const insert = "insert into items (id, name, ok, score, data, note) values ($1, $2, $3, $4, $5, $6)"
		const lookup = "select name from items where id = $1 and score > $2"
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			if _, err := conn.Prepare(ctx, "add_item", insert); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "add_item", 2, "twö", false, 2.25, []byte{0xca, 0xfe}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "add_item", int64(3), "three", true, -0.5, []byte{}, "a note"); err != nil {
				t.Fatal(err)
			}
			var name string
			if err := conn.QueryRow(ctx, lookup, 2, 1.0).Scan(&name); err != nil || name != "twö" {
				t.Errorf("prepared select: %q, %v", name, err)
			}
			if err := conn.Deallocate(ctx, "add_item"); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)
		})
		// pgx sends text values in text format and the others (int4,
		// bool, float8, bytea) in binary: the audit shows binary ones
		// as \x and hexadecimal, NULL as NULL.
		checkSession(t, s[0],
			"start",
			"parse: "+insert,
			`bind: `+insert+` [\x00000002, twö, \x00, \x4002000000000000, \xcafe, NULL]`,
			"execute: "+insert,
			`bind: `+insert+` [\x00000003, three, \x01, \xbfe0000000000000, \x, a note]`,
			"execute: "+insert,
			"parse: "+lookup,
			`bind: `+lookup+` [\x00000002, \x3ff0000000000000]`,
			"execute: "+lookup,
			"close statement",
			"end")
		// Each step names the statement it belongs to: add_item, then
		// the one pgx prepared and cached for the lookup.
		for _, i := range []int{1, 2, 3, 4, 5, 9} {
			if got := s[0][i].str("statement_name"); got != "add_item" {
				t.Errorf("%s names statement %q, want add_item", s[0][i].str("event"), got)
			}
		}
		cached := s[0][6].str("statement_name")
		if cached == "" || s[0][7].str("statement_name") != cached || s[0][8].str("statement_name") != cached {
			t.Errorf("pgx's cached statement is not named alike in parse, bind and execute: %q, %q, %q",
				cached, s[0][7].str("statement_name"), s[0][8].str("statement_name"))
		}
	})

	t.Run("pgx batch", func(t *testing.T) {
		const insert = "insert into items (id, name) values ($1, $2)"
		const count = "select count(*) from items where id >= $1"
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			b := &pgx.Batch{}
			b.Queue(insert, 10, "ten")
			b.Queue(insert, 11, "eleven")
			b.Queue(count, 10)
			br := conn.SendBatch(ctx, b)
			for range 2 {
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := br.QueryRow().Scan(&n); err != nil || n != 2 {
				t.Errorf("batch count: %d, %v", n, err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)
		})
		// pgx prepares both statements, then pipelines the three
		// executions: one round trip.
		checkSession(t, s[0],
			"start",
			"parse: "+insert,
			"parse: "+count,
			`bind: `+insert+` [\x0000000a, ten]`,
			"execute: "+insert,
			`bind: `+insert+` [\x0000000b, eleven]`,
			"execute: "+insert,
			`bind: `+count+` [\x0000000a]`,
			"execute: "+count,
			"end")
	})

	t.Run("pgx CopyFrom", func(t *testing.T) {
		const rows = 5000
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			mustExec(t, conn, "create table copied (id int, name text)")
			src := make([][]any, rows)
			for i := range src {
				src[i] = []any{i, fmt.Sprintf("row %d", i)}
			}
			n, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "name"}, pgx.CopyFromRows(src))
			if err != nil || n != rows {
				t.Fatalf("CopyFrom: %d rows, %v", n, err)
			}
			var count, sum int
			if err := conn.QueryRow(ctx, "select count(*), sum(id) from copied", pgx.QueryExecModeSimpleProtocol).Scan(&count, &sum); err != nil ||
				count != rows || sum != rows*(rows-1)/2 {
				t.Errorf("after CopyFrom: count %d, sum %d, %v", count, sum, err)
			}
			conn.Close(ctx)
		})
		checkSession(t, s[0],
			"start",
			"query: create table copied (id int, name text)",
			`parse: select "id", "name" from "copied"`, // pgx learns the column types
			`query: copy "copied" ( "id", "name" ) from stdin binary;`,
			"query: select count(*), sum(id) from copied",
			"end")
	})

	t.Run("pgx 100 MB result", func(t *testing.T) {
		const query = "select repeat('x', 1000) from generate_series(1, 100000)"
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			rows, err := conn.Query(ctx, query)
			if err != nil {
				t.Fatal(err)
			}
			var n, size int
			for rows.Next() {
				n++
				size += len(rows.RawValues()[0])
			}
			if err := rows.Err(); err != nil || n != 100000 || size != 100_000_000 {
				t.Errorf("streamed %d rows, %d bytes (%v); want 100000 rows, 100000000 bytes", n, size, err)
			}
			conn.Close(ctx)
		})
		checkSession(t, s[0], "start", "parse: "+query, "bind: "+query+" []", "execute: "+query, "end")
		end := s[0][len(s[0])-1]
		if out, _ := end["bytes_out"].(float64); out < 100_000_000 {
			t.Errorf("db.session.end counts %v bytes to the client, want more than 100 MB", end["bytes_out"])
		}
	})

	t.Run("psql copy in and out", func(t *testing.T) {
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv")
		csv := "1,alpha\n2,\"b, with a comma\"\n3,gamma\n"
		if err := os.WriteFile(in, []byte(csv), 0o600); err != nil {
			t.Fatal(err)
		}
		s := c.sessions(t, "alice", 1, func() {
			stdout, stderr, err := alice.psql(t, nil, "-X", "-v", "ON_ERROR_STOP=1",
				"-c", "create table csv_rows (id int, name text)",
				"-c", fmt.Sprintf(`\copy csv_rows from '%s' csv`, in),
				"-c", fmt.Sprintf(`\copy (select * from csv_rows order by id) to '%s' csv`, out))
			if err != nil {
				t.Fatalf("psql: %v\n%s%s", err, stdout, stderr)
			}
		})
		got, err := os.ReadFile(out)
		if err != nil || string(got) != csv {
			t.Errorf("\\copy out wrote %q (%v), want %q", got, err, csv)
		}
		checkSession(t, s[0],
			"start",
			"query: create table csv_rows (id int, name text)",
			"query: COPY  csv_rows FROM STDIN csv",
			"query: COPY  ( select * from csv_rows order by id ) TO STDOUT csv",
			"end")
	})

	t.Run("pgbench", func(t *testing.T) {
		requireProgram(t, "pgbench")
		pgbench := func(args ...string) {
			t.Helper()
			cfg := alice.cfg
			x := exec.Command("pgbench", append([]string{"-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.DBUser}, append(args, cfg.DBName)...)...)
			x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + alice.home, "PGCONNECT_TIMEOUT=20",
				"PGSSLMODE=verify-full", "PGSSLROOTCERT=" + cfg.CAFile, "PGSSLCERT=" + cfg.CertFile, "PGSSLKEY=" + cfg.KeyFile}
			timer := time.AfterFunc(3*time.Minute, func() { x.Process.Kill() })
			defer timer.Stop()
			out, err := x.CombinedOutput()
			if err != nil {
				t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// -i: one session that creates and fills the tables (COPY for
		// the accounts), all of it simple queries.
		s := c.sessions(t, "alice", 1, func() { pgbench("-i", "-s", "1", "-q") })
		counts := map[string]int{}
		for _, e := range s[0][1 : len(s[0])-1] {
			d := e.describe()
			if !strings.HasPrefix(d, "query: ") {
				t.Errorf("pgbench -i: unexpected event %s", d)
			}
			switch {
			case strings.HasPrefix(d, "query: insert into pgbench_tellers"):
				counts["tellers"]++
			case strings.HasPrefix(d, "query: insert into pgbench_branches"):
				counts["branches"]++
			case strings.HasPrefix(d, "query: copy pgbench_accounts from stdin"):
				counts["copy"]++
			}
		}
		if counts["tellers"] != 10 || counts["branches"] != 1 || counts["copy"] != 1 {
			t.Errorf("pgbench -i -s 1: audited %v; want 10 tellers and 1 branch inserted, the accounts copied once:\n%s",
				counts, strings.Join(describeAll(s[0]), "\n"))
		}

		// -S: a session that looks at the tables, then the client's:
		// exactly 200 selects.
		selectRE := regexp.MustCompile(`^query: SELECT abalance FROM pgbench_accounts WHERE aid = \d+;$`)
		s = c.sessions(t, "alice", 2, func() { pgbench("-S", "-t", "200", "-n") })
		if n := countMatching(s[1], selectRE); n != 200 || len(s[1]) != 202 {
			t.Errorf("pgbench -S -t 200: %d of %d events in the client's session are its selects; want 200 of 202 (with start and end)", n, len(s[1]))
		}

		// -M prepared: one Parse, then 200 Bind (with the account
		// number) and Execute.
		s = c.sessions(t, "alice", 2, func() { pgbench("-M", "prepared", "-S", "-t", "200", "-n") })
		const prepared = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
		bindRE := regexp.MustCompile(`^bind: ` + regexp.QuoteMeta(prepared) + ` \[\d+\]$`)
		executeRE := regexp.MustCompile(`^execute: ` + regexp.QuoteMeta(prepared) + `$`)
		events := s[1]
		if len(events) != 403 || events[1].describe() != "parse: "+prepared {
			t.Fatalf("pgbench -M prepared -t 200: %d events, want start, parse, 200 binds and executes, end:\n%s",
				len(events), strings.Join(describeAll(events[:min(len(events), 10)]), "\n"))
		}
		for i := 2; i < 402; i += 2 {
			if b, x := events[i].describe(), events[i+1].describe(); !bindRE.MatchString(b) || !executeRE.MatchString(x) {
				t.Fatalf("pgbench -M prepared: events %d and %d are %q and %q; want a bind and an execute of %q", i, i+1, b, x, prepared)
			}
		}
	})

	// A running query is cancelled with pgconn's CancelRequest: pgx sends
	// it over TLS (an SSLRequest first) to the proxy's PostgreSQL port,
	// which routes it over the tunnel to the agent, which sends the real
	// key to PostgreSQL.
	t.Run("pgx cancels a query over TLS", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			cfg := alice.pgxConfig(t)
			cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 20 * time.Second}
			}
			conn := connectWith(t, cfg)
			qctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(qctx, "select pg_sleep(30)")
				done <- err
			}()
			c.waitActive(t, "select pg_sleep(30)")
			cancel()
			if err := <-done; !isPgError(err, "57014") {
				t.Errorf("the cancelled query returned %v; want SQLSTATE 57014 (query_canceled)", err)
			}
			// The session goes on.
			var one int
			if err := conn.QueryRow(ctx, "select 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil || one != 1 {
				t.Errorf("select 1 after the cancel: %d, %v", one, err)
			}
			conn.Close(ctx)
		})
		checkSession(t, s[0], "start", "query: select pg_sleep(30)", "query: select 1", "end")
	})

	// libpq 15 (psql's Ctrl-C) sends the CancelRequest in plaintext to the
	// proxy's PostgreSQL port; so does this.
	t.Run("plaintext CancelRequest on the native port", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			conn := alice.connect(t)
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, "select pg_sleep(30)")
				done <- err
			}()
			c.waitActive(t, "select pg_sleep(30)")
			pc := conn.PgConn()
			req, err := (&pgproto3.CancelRequest{ProcessID: pc.PID(), SecretKey: pc.SecretKey()}).Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := net.DialTimeout("tcp", alice.cfg.Addr(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Write(req); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !isPgError(err, "57014") {
					t.Errorf("the cancelled query returned %v; want SQLSTATE 57014 (query_canceled)", err)
				}
			case <-time.After(25 * time.Second):
				t.Fatal("the query was not cancelled")
			}
			conn.Close(ctx)
		})
		checkSession(t, s[0], "start", "query: select pg_sleep(30)", "end")
	})

	t.Run("psql Ctrl-C cancels the query", func(t *testing.T) {
		var stderr bytes.Buffer
		s := c.sessions(t, "alice", 1, func() {
			x := alice.psqlCmd(t, nil, "-X", "-c", "select pg_sleep(30)")
			x.Stderr = &stderr
			if err := x.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(time.Minute, func() { x.Process.Kill() })
			defer timer.Stop()
			c.waitActive(t, "select pg_sleep(30)")
			if err := x.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			x.Wait()
		})
		if !strings.Contains(stderr.String(), "canceling statement due to user request") {
			t.Errorf("psql after Ctrl-C: %q; want the statement cancelled", stderr.String())
		}
		checkSession(t, s[0], "start", "query: select pg_sleep(30)", "end")
	})
}

// waitActive waits until a session runs query in PostgreSQL (seen by the
// superuser, straight on the server).
func (c *pgCluster) waitActive(t *testing.T, query string) {
	t.Helper()
	ctx := context.Background()
	admin := c.pg.Admin(t, "")
	waitFor(t, "the query to run: "+query, 30*time.Second, func() bool {
		var n int
		err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where state = 'active' and query = $1", query).Scan(&n)
		return err == nil && n > 0
	})
}

func countMatching(events []auditEvent, re *regexp.Regexp) int {
	n := 0
	for _, e := range events {
		if re.MatchString(e.describe()) {
			n++
		}
	}
	return n
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func requireProgram(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(dbtest.RequireEnv) == "1" {
			t.Fatalf("%s is not installed (Debian package postgresql-client)", name)
		}
		t.Skipf("%s is not installed (Debian package postgresql-client)", name)
	}
}
