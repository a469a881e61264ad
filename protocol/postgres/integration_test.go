package postgres

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// hangGuard bounds each integration test so that a broken relay fails
// instead of hanging; no assertion depends on it.
const hangGuard = 2 * time.Minute

func newTestAgent(t *testing.T) (*testAgent, *dbtest.Postgres) {
	t.Helper()
	pg := shared.Postgres(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), "alice")
	return startAgent(t, pg, dbtest.ClientTLS(t, pg.CAFile, cert, key)), pg
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// checkTranscript compares the recorded events with want, line by line.
func checkTranscript(t *testing.T, rec *recorder, want []string) {
	t.Helper()
	got := transcript(rec.all())
	if !slices.Equal(got, want) {
		t.Errorf("audit events:\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// closeAndCheck closes conn and checks that the relay ended cleanly.
func closeAndCheck(t *testing.T, a *testAgent, conn *pgx.Conn) *agentSession {
	t.Helper()
	if err := conn.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := a.lastSession(t, true)
	if s.err != nil {
		t.Errorf("relay ended with %v, want nil after Terminate", s.err)
	}
	return s
}

// Every event carries the session's common fields.
func checkCommonFields(t *testing.T, events []audit.Event) {
	t.Helper()
	for _, e := range events {
		md := e.GetMetadata()
		if md.Time.IsZero() || md.ClusterName != "test" {
			t.Errorf("%s: time %v cluster %q", md.Type, md.Time, md.ClusterName)
		}
		f, err := audit.ToFields(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"sid", "user", "db_service", "db_protocol", "db_user", "db_name"} {
			if f.GetString(k) == "" {
				t.Errorf("%s: %q is empty", md.Type, k)
			}
		}
	}
}

func TestRelaySimpleQueries(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	a.rec.reset()

	for _, sql := range []string{
		"create temp table simple_t (id int, name text)",
		"insert into simple_t values (1, 'a'), (2, 'b')",
		"select 1; select 'two'",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, "select * from no_such_table"); err == nil {
		t.Fatal("query of a missing table succeeded")
	}
	checkTranscript(t, a.rec, []string{
		"query create temp table simple_t (id int, name text)",
		"query insert into simple_t values (1, 'a'), (2, 'b')",
		"query select 1; select 'two'",
		"query select * from no_such_table",
	})
	checkCommonFields(t, a.rec.all())
	s := closeAndCheck(t, a, conn)
	if s.stats.BytesFromClient == 0 || s.stats.BytesToClient == 0 {
		t.Errorf("stats %+v", s.stats)
	}
}

// The client sees the substitute cancel key, never the database's.
func TestReplayStartupSubstitutesKey(t *testing.T) {
	a, _ := newTestAgent(t)
	conn := a.connect(t)
	s := a.lastSession(t, false)
	pc := conn.PgConn()
	if pc.PID() != s.key.ProcessID || string(pc.SecretKey()) != string(s.key.Secret) {
		t.Errorf("client key %d/%x, want the substitute %d/%x", pc.PID(), pc.SecretKey(), s.key.ProcessID, s.key.Secret)
	}
	if s.real.ProcessID == s.key.ProcessID || len(s.real.Secret) == 0 {
		t.Errorf("real key %+v looks like the substitute %+v", s.real, s.key)
	}
	if pc.ParameterStatus("server_version") == "" || pc.ParameterStatus("client_encoding") != "UTF8" {
		t.Errorf("parameter status not replayed: server_version %q client_encoding %q",
			pc.ParameterStatus("server_version"), pc.ParameterStatus("client_encoding"))
	}
	closeAndCheck(t, a, conn)
}

func TestRelayPreparedStatements(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	a.rec.reset()

	// pgx's statement cache: a named statement, binary int parameter.
	var n int32
	if err := conn.QueryRow(ctx, "select $1::int4 + 1", int32(41)).Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
	// Run again: cached, so Bind and Execute only.
	if err := conn.QueryRow(ctx, "select $1::int4 + 1", int32(1)).Scan(&n); err != nil || n != 2 {
		t.Fatalf("got %d, %v", n, err)
	}
	// An explicitly named statement with a text parameter.
	if _, err := conn.Prepare(ctx, "greet", "select $1::text || '!'"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := conn.QueryRow(ctx, "greet", "hi").Scan(&s); err != nil || s != "hi!" {
		t.Fatalf("got %q, %v", s, err)
	}
	// The unnamed statement with explicit formats: text, binary, NULL,
	// and text that is not valid UTF-8 (bytea input, hex-rendered).
	res := conn.PgConn().ExecParams(ctx, "select $1::text, $2::bytea, $3::int4, length($4::bytea)",
		[][]byte{[]byte("héllo"), {0xde, 0xad}, nil, {'\\', 'x', 'f', 'f'}}, nil, []int16{0, 1, 0, 0}, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := conn.Deallocate(ctx, "greet"); err != nil {
		t.Fatal(err)
	}

	checkTranscript(t, a.rec, []string{
		`parse "stmtcache_*" select $1::int4 + 1`,
		`bind "stmtcache_*"->"" ["\\x00000029"] select $1::int4 + 1`,
		`execute "" max=0 "stmtcache_*" select $1::int4 + 1`,
		`bind "stmtcache_*"->"" ["\\x00000001"] select $1::int4 + 1`,
		`execute "" max=0 "stmtcache_*" select $1::int4 + 1`,
		`parse "greet" select $1::text || '!'`,
		`bind "greet"->"" ["hi"] select $1::text || '!'`,
		`execute "" max=0 "greet" select $1::text || '!'`,
		`parse "" select $1::text, $2::bytea, $3::int4, length($4::bytea)`,
		`bind ""->"" ["héllo" "\\xdead" NULL "\\xff"] select $1::text, $2::bytea, $3::int4, length($4::bytea)`,
		`execute "" max=0 "" select $1::text, $2::bytea, $3::int4, length($4::bytea)`,
		`close statement "greet"""`,
	})
	checkCommonFields(t, a.rec.all())
	closeAndCheck(t, a, conn)
}

// A batch goes out as one pipeline; the events follow the messages.
func TestRelayBatch(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	if _, err := conn.Exec(ctx, "create temp table batch_t (id int8, name text)"); err != nil {
		t.Fatal(err)
	}
	a.rec.reset()

	b := &pgx.Batch{}
	b.Queue("insert into batch_t values ($1, $2)", int64(1), "one")
	b.Queue("insert into batch_t values ($1, $2)", int64(2), "two")
	b.Queue("select count(*) from batch_t")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	checkTranscript(t, a.rec, []string{
		`parse "stmtcache_*" insert into batch_t values ($1, $2)`,
		`parse "stmtcache_*" select count(*) from batch_t`,
		`bind "stmtcache_*"->"" ["\\x0000000000000001" "one"] insert into batch_t values ($1, $2)`,
		`execute "" max=0 "stmtcache_*" insert into batch_t values ($1, $2)`,
		`bind "stmtcache_*"->"" ["\\x0000000000000002" "two"] insert into batch_t values ($1, $2)`,
		`execute "" max=0 "stmtcache_*" insert into batch_t values ($1, $2)`,
		`bind "stmtcache_*"->"" [] select count(*) from batch_t`,
		`execute "" max=0 "stmtcache_*" select count(*) from batch_t`,
	})
	closeAndCheck(t, a, conn)
}

// COPY FROM streams CopyData through the relay; only the statements are
// audited.
func TestRelayCopyFrom(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	if _, err := conn.Exec(ctx, "create temp table copy_t (id int8, name text)"); err != nil {
		t.Fatal(err)
	}
	a.rec.reset()

	const rows = 50000
	name := strings.Repeat("n", 100)
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"copy_t"}, []string{"id", "name"},
		pgx.CopyFromSlice(rows, func(i int) ([]any, error) { return []any{int64(i), name}, nil }))
	if err != nil || n != rows {
		t.Fatalf("CopyFrom: %d rows, %v", n, err)
	}
	var count int64
	if err := conn.QueryRow(ctx, "select count(*) from copy_t where name = $1", name).Scan(&count); err != nil || count != rows {
		t.Fatalf("count %d, %v", count, err)
	}
	checkTranscript(t, a.rec, []string{
		// pgx learns the column types by preparing (never running) a select.
		`parse "stmtcache_*" select "id", "name" from "copy_t"`,
		`query copy "copy_t" ( "id", "name" ) from stdin binary;`,
		`parse "stmtcache_*" select count(*) from copy_t where name = $1`,
		`bind "stmtcache_*"->"" ["` + name + `"] select count(*) from copy_t where name = $1`,
		`execute "" max=0 "stmtcache_*" select count(*) from copy_t where name = $1`,
	})
	s := closeAndCheck(t, a, conn)
	if s.stats.BytesFromClient < rows*100 {
		t.Errorf("BytesFromClient = %d, want at least the copied data", s.stats.BytesFromClient)
	}
}

// A large result streams to the client.
func TestRelayLargeResult(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	a.rec.reset()

	const sql = "select repeat('x', 1000) from generate_series(1, 20000)"
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for rows.Next() {
		total += len(rows.RawValues()[0])
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if total != 20_000_000 {
		t.Fatalf("read %d bytes of values, want 20000000", total)
	}
	checkTranscript(t, a.rec, []string{
		`parse "stmtcache_*" ` + sql,
		`bind "stmtcache_*"->"" [] ` + sql,
		`execute "" max=0 "stmtcache_*" ` + sql,
	})
	s := closeAndCheck(t, a, conn)
	if s.stats.BytesToClient < 20_000_000 {
		t.Errorf("BytesToClient = %d, want more than 20 MB", s.stats.BytesToClient)
	}
}

// A CancelRequest with the substitute key reaches the right backend
// through SendCancel and stops the query.
func TestRelayCancel(t *testing.T) {
	a, pg := newTestAgent(t)
	ctx := testContext(t)
	conn := a.connect(t)
	a.rec.reset()

	const sql = "select pg_sleep(600)"
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, sql)
		done <- err
	}()
	// Wait until the query runs, as seen by the server.
	admin := pg.Admin(t, "")
	for {
		var n int
		err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where state = 'active' and query = $1", sql).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("query ended before it was cancelled: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("query ended with %v, want SQLSTATE 57014 (query_canceled)", err)
	}
	a.mu.Lock()
	cancels := append([]error(nil), a.cancels...)
	a.mu.Unlock()
	if len(cancels) != 1 || cancels[0] != nil {
		t.Errorf("agent cancels: %v", cancels)
	}
	// The session goes on.
	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	checkTranscript(t, a.rec, []string{"query " + sql, "query select 1"})
	closeAndCheck(t, a, conn)
}

// A client message larger than MaxMessageSize is refused with an error the
// client sees, and the refusal is audited.
func TestRelayRefusesOversizedMessage(t *testing.T) {
	a, _ := newTestAgent(t)
	const limit = 1 << 20
	a.configure = func(r *Relay) { r.MaxMessageSize = limit }
	ctx := testContext(t)
	conn := a.connect(t)
	a.rec.reset()

	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	big := "select length('" + strings.Repeat("x", 2*limit) + "')"
	_, err := conn.Exec(ctx, big)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != CodeProtocolViolation || pgErr.Severity != "FATAL" ||
		!strings.Contains(pgErr.Message, "exceeds the limit of 1048576 bytes") {
		t.Fatalf("oversized query: %v, want a FATAL 08P01 naming the limit", err)
	}
	s := a.lastSession(t, true)
	if !IsMessageRefused(s.err) {
		t.Errorf("relay ended with %v, want a MessageRefusedError", s.err)
	}
	if s.stats.BytesFromClient < 2*limit {
		t.Errorf("BytesFromClient = %d; the refused message should have been read and dropped", s.stats.BytesFromClient)
	}
	events := a.rec.all()
	if len(events) != 2 {
		t.Fatalf("events: %v", transcript(events))
	}
	q, ok := events[1].(*audit.DatabaseSessionQuery)
	if !ok || q.Success || !strings.HasPrefix(q.Query, "select length('xxx") ||
		!strings.HasSuffix(q.Query, fmt.Sprintf("...(truncated, %d bytes)", len(big)+1)) ||
		len(q.Query) > refusedPrefix+100 || !strings.Contains(q.Error, "exceeds the limit") {
		t.Errorf("refusal event: %+v", events[1])
	}
}

// An ErrorResponse from the database during startup reaches the client
// unchanged.
func TestConnectUpstreamForwardsServerError(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	_, err := pgx.Connect(ctx, a.dsn("alice", "no_such_db"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" || !strings.Contains(pgErr.Message, `"no_such_db" does not exist`) {
		t.Fatalf("connect to a missing database: %v, want the server's 3D000", err)
	}
}

// psql, unmodified, through the agent.
func TestRelayPsql(t *testing.T) {
	a, _ := newTestAgent(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed (Debian package postgresql-client)")
	}
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, psql, "--no-psqlrc", "--no-align", "--tuples-only",
		"--command=select 42", a.dsn("alice", "app"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql: %v: %s", err, out)
	}
	if s := a.lastSession(t, true); s.err != nil {
		t.Errorf("relay ended with %v", s.err)
	}
	checkTranscript(t, a.rec, []string{"query select 42"})
}
