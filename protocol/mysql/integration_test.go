package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	gosql "github.com/go-sql-driver/mysql"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// hangGuard bounds each integration test so that a broken relay fails
// instead of hanging; no assertion depends on it.
const hangGuard = 2 * time.Minute

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

var stmtIDField = regexp.MustCompile(`^(execute|close|reset|fetch|send_long_data) (\d+)`)

// checkStatements is checkTranscript with statement IDs, which MariaDB
// counts server-wide, numbered by order of appearance: #1, #2, ...
func checkStatements(t *testing.T, rec *recorder, want []string) {
	t.Helper()
	ids := map[string]string{}
	var got []string
	for _, line := range transcript(rec.all()) {
		if m := stmtIDField.FindStringSubmatch(line); m != nil {
			id, ok := ids[m[2]]
			if !ok {
				id = fmt.Sprintf("#%d", len(ids)+1)
				ids[m[2]] = id
			}
			line = m[1] + " " + id + line[len(m[0]):]
		}
		got = append(got, line)
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit events:\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkCommonFields checks that every event carries the session's fields.
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

// cliArgs are the arguments that make the mariadb client log in through
// the agent as user with a client certificate.
func (a *testAgent) cliArgs(t *testing.T, user, database string) []string {
	t.Helper()
	my := shared.MariaDB(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), user)
	host, port, _ := net.SplitHostPort(a.addr())
	args := []string{
		"--no-defaults", "--protocol=TCP", "--host=" + host, "--port=" + port, "--user=" + user,
		"--ssl", "--ssl-ca=" + my.CAFile, "--ssl-cert=" + cert, "--ssl-key=" + key, "--ssl-verify-server-cert",
		"--connect-timeout=30",
	}
	if database != "" {
		args = append(args, "--database="+database)
	}
	return args
}

// runCLI runs the mariadb client with args and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		if os.Getenv("PORTCULLIS_REQUIRE_DB") != "" {
			t.Fatal("the mariadb client is not installed (Debian package mariadb-client)")
		}
		t.Skip("the mariadb client is not installed (Debian package mariadb-client)")
	}
	out, err := exec.CommandContext(testContext(t), bin, args...).CombinedOutput()
	return string(out), err
}

// closeAndCheck closes db and checks that the relay ended cleanly.
func closeAndCheck(t *testing.T, a *testAgent, db *sql.DB) *agentSession {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := a.lastSession(t, true)
	if s.err != nil {
		t.Errorf("relay ended with %v, want nil after COM_QUIT", s.err)
	}
	return s
}

func TestDriverTextQueries(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	db := a.open(t, a.driverConfig(t, "alice", "app"))
	for _, q := range []string{
		"create temporary table text_t (id int, name text)",
		"insert into text_t values (1, 'a'), (2, 'b')",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var names []string
	rows, err := db.QueryContext(ctx, "select name from text_t order by id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	if err := rows.Err(); err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("rows %v, %v", names, err)
	}
	if _, err := db.ExecContext(ctx, "select * from no_such_table"); err == nil {
		t.Fatal("query of a missing table succeeded")
	}
	checkTranscript(t, a.rec, []string{
		"query create temporary table text_t (id int, name text)",
		"query insert into text_t values (1, 'a'), (2, 'b')",
		"query select name from text_t order by id",
		"query select * from no_such_table",
	})
	checkCommonFields(t, a.rec.all())
	s := closeAndCheck(t, a, db)
	if s.stats.BytesFromClient == 0 || s.stats.BytesToClient == 0 {
		t.Errorf("stats %+v", s.stats)
	}
	if s.hello.Capabilities&gomysql.CLIENT_DEPRECATE_EOF == 0 {
		t.Errorf("go-sql-driver did not negotiate CLIENT_DEPRECATE_EOF (capabilities %#x)", s.hello.Capabilities)
	}
}

// go-sql-driver binds int64, uint64, float64, bool, string, []byte, NULL
// and time.Time (as a string) parameters.
func TestDriverPreparedStatements(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	db := a.open(t, a.driverConfig(t, "alice", "app"))
	a.rec.reset()

	const q = "select ? + 1, ?, ?, ?, concat(?, '!'), hex(?), ? is null, ?"
	when := time.Date(2026, 11, 23, 20, 30, 0, 123456000, time.UTC)
	var (
		n      int64
		u      uint64
		f      float64
		b      bool
		s, hx  string
		isNull bool
		ts     string
	)
	err := db.QueryRowContext(ctx, q, int64(41), uint64(1<<63), 2.5, true, "héllo", []byte{0xff, 0x00}, nil, when).
		Scan(&n, &u, &f, &b, &s, &hx, &isNull, &ts)
	if err != nil {
		t.Fatal(err)
	}
	if n != 42 || u != 1<<63 || f != 2.5 || !b || s != "héllo!" || hx != "FF00" || !isNull || ts != "2026-11-23 20:30:00.123456" {
		t.Errorf("got %d %d %v %v %q %q %v %q", n, u, f, b, s, hx, isNull, ts)
	}
	// A statement prepared once and run twice.
	stmt, err := db.PrepareContext(ctx, "select ? * 2")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{1, 2} {
		if err := stmt.QueryRowContext(ctx, v).Scan(&n); err != nil || n != 2*v {
			t.Fatalf("got %d, %v", n, err)
		}
	}
	if err := stmt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil { // COM_STMT_CLOSE has no answer: make sure the relay read it
		t.Fatal(err)
	}
	checkStatements(t, a.rec, []string{
		"prepare " + q,
		`execute #1 ["41" "9223372036854775808" "2.5" "1" "héllo" "\\xff00" NULL "2026-11-23 20:30:00.123456"] ` + q,
		"close #1 " + q,
		"prepare select ? * 2",
		`execute #2 ["1"] select ? * 2`,
		`execute #2 ["2"] select ? * 2`,
		"close #2 select ? * 2",
	})
	checkCommonFields(t, a.rec.all())
	closeAndCheck(t, a, db)
}

// go-mysql's client binds Go's sized integers, float32 and strings with
// their own binary types.
func TestBinaryParameterTypes(t *testing.T) {
	a, _ := newTestAgent(t)
	c := a.rawClient(t, "alice", "app")
	a.rec.reset()
	const q = "select ?, ?, ?, ?, ?, ?, ?, ?"
	r, err := c.Execute(q, int8(-8), int16(-16), int32(-32), uint8(200), uint16(60000), uint32(4000000000), float32(1.5), "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.GetInt(0, 0); got != -8 {
		t.Errorf("first column %d", got)
	}
	r.Close()
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	checkStatements(t, a.rec, []string{
		"prepare " + q,
		`execute #1 ["-8" "-16" "-32" "200" "60000" "4000000000" "1.5" "x"] ` + q,
		"close #1 " + q,
	})
}

// Long parameters that go-sql-driver sends with COM_STMT_SEND_LONG_DATA.
func TestDriverLongData(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	cfg := a.driverConfig(t, "alice", "app")
	cfg.MaxAllowedPacket = 64 << 10 // long data past 32 KiB for one parameter
	db := a.open(t, cfg)
	a.rec.reset()
	blob := bytes.Repeat([]byte("0123456789"), 10000)
	var n int
	if err := db.QueryRowContext(ctx, "select length(?)", blob).Scan(&n); err != nil || n != len(blob) {
		t.Fatalf("got %d, %v", n, err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	// go-sql-driver sends the value in pieces of what fits a packet.
	checkStatements(t, a.rec, []string{
		"prepare select length(?)",
		"send_long_data #1 param=0 size=65528 select length(?)",
		"send_long_data #1 param=0 size=34472 select length(?)",
		`execute #1 ["(long data, 100000 bytes)"] select length(?)`,
		"close #1 select length(?)",
	})
	closeAndCheck(t, a, db)
}

func TestDriverTransaction(t *testing.T) {
	a, my := newTestAgent(t)
	ctx := testContext(t)
	my.Exec(t, "drop table if exists app.tx_t")
	my.Exec(t, "create table app.tx_t (id int primary key)")
	db := a.open(t, a.driverConfig(t, "alice", "app"))
	a.rec.reset()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "insert into tx_t values (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "insert into tx_t values (2)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var ids []int
	rows, err := db.QueryContext(ctx, "select id from tx_t")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		rows.Scan(&id)
		ids = append(ids, id)
	}
	if !slices.Equal(ids, []int{2}) {
		t.Errorf("rows %v, want [2]", ids)
	}
	checkTranscript(t, a.rec, []string{
		"query START TRANSACTION", "query insert into tx_t values (1)", "query ROLLBACK",
		"query START TRANSACTION", "query insert into tx_t values (2)", "query COMMIT",
		"query select id from tx_t",
	})
	closeAndCheck(t, a, db)
}

func TestDriverMultiStatements(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	cfg := a.driverConfig(t, "alice", "app")
	cfg.MultiStatements = true
	db := a.open(t, cfg)
	a.rec.reset()
	const q = "create temporary table multi_t (id int); insert into multi_t values (1), (2); select count(*) from multi_t"
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "select 1; select 2, 3")
	if err != nil {
		t.Fatal(err)
	}
	var sets int
	for {
		for rows.Next() {
		}
		sets++
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil || sets != 2 {
		t.Fatalf("%d result sets, %v", sets, err)
	}
	checkTranscript(t, a.rec, []string{"query " + q, "query select 1; select 2, 3"})
	closeAndCheck(t, a, db)
}

// A 100 MB result streams through the relay unparsed.
func TestDriverLargeResult(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	db := a.open(t, a.driverConfig(t, "alice", "app"))
	a.rec.reset()
	const q = "select repeat('x', 1048576) from seq_1_to_100"
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var total, count int
	var v sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		total += len(v)
		count++
	}
	if err := rows.Err(); err != nil || count != 100 || total != 100<<20 {
		t.Fatalf("%d rows, %d bytes, %v", count, total, err)
	}
	checkTranscript(t, a.rec, []string{"query " + q})
	s := closeAndCheck(t, a, db)
	if s.stats.BytesToClient < 100<<20 {
		t.Errorf("stats %+v", s.stats)
	}
}

// The regression that capability flags guard against: go-mysql's client
// asks for CLIENT_DEPRECATE_EOF on its own, so an upstream login that does
// not repeat the client's flags sends result sets without the EOF packets
// a client like the mariadb client expects. Here a go-mysql client that
// does not negotiate CLIENT_DEPRECATE_EOF (and one that does) reads result
// sets, multi-row and multi-result, through the relay.
func TestResultSetFramingFollowsTheClient(t *testing.T) {
	for _, deprecateEOF := range []bool{false, true} {
		t.Run(fmt.Sprintf("CLIENT_DEPRECATE_EOF=%v", deprecateEOF), func(t *testing.T) {
			a, _ := newTestAgent(t)
			c := a.rawClient(t, "alice", "app", func(c *client.Conn) error {
				if !deprecateEOF {
					c.UnsetCapability(gomysql.CLIENT_DEPRECATE_EOF)
				}
				return c.SetCapability(gomysql.CLIENT_MULTI_STATEMENTS)
			})
			s := a.lastSession(t, false)
			if got := s.hello.Capabilities&gomysql.CLIENT_DEPRECATE_EOF != 0; got != deprecateEOF {
				t.Fatalf("client negotiated CLIENT_DEPRECATE_EOF=%v", got)
			}
			if got := s.up.Capabilities&gomysql.CLIENT_DEPRECATE_EOF != 0; got != deprecateEOF {
				t.Errorf("upstream negotiated CLIENT_DEPRECATE_EOF=%v, the client %v", got, deprecateEOF)
			}
			for range 3 {
				r, err := c.Execute("select seq, concat('row ', seq) from seq_1_to_5")
				if err != nil {
					t.Fatal(err)
				}
				if r.RowNumber() != 5 {
					t.Fatalf("%d rows", r.RowNumber())
				}
				if v, _ := r.GetString(4, 1); v != "row 5" {
					t.Errorf("last row %q", v)
				}
				r.Close()
			}
			var sets int
			if _, err := c.ExecuteMultiple("select 1; select 2, 3; do 1", func(r *gomysql.Result, err error) {
				if err != nil {
					t.Error(err)
				}
				sets++
			}); err != nil {
				t.Fatal(err)
			}
			if sets != 3 {
				t.Errorf("%d results", sets)
			}
			if err := c.Ping(); err != nil {
				t.Fatalf("the session is out of step after the result sets: %v", err)
			}
		})
	}
}

func TestCLI(t *testing.T) {
	a, my := newTestAgent(t)
	t.Run("select", func(t *testing.T) {
		a.rec.reset()
		out, err := runCLI(t, append(a.cliArgs(t, "alice", "app"), "--batch", "--skip-column-names", "-e", "select 42")...)
		if err != nil {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		if strings.TrimSpace(out) != "42" {
			t.Errorf("output %q, want 42", out)
		}
		s := a.lastSession(t, true)
		if s.err != nil {
			t.Errorf("relay: %v", s.err)
		}
		if s.hello.Capabilities&gomysql.CLIENT_DEPRECATE_EOF != 0 {
			t.Errorf("the mariadb client negotiated CLIENT_DEPRECATE_EOF; this test wants a client that does not")
		}
		checkTranscript(t, a.rec, []string{"query select 42"})
	})
	t.Run("with a password", func(t *testing.T) {
		// The client answers the caching_sha2_password challenge; the
		// proxy's fast-auth OK is accepted and the password ignored.
		a.rec.reset()
		out, err := runCLI(t, append(a.cliArgs(t, "alice", "app"), "--password=ignored", "--batch", "--skip-column-names", "-e", "select 1 + 1")...)
		if err != nil || strings.TrimSpace(out) != "2" {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		if s := a.lastSession(t, true); !s.hello.AuthResponded || s.hello.AuthPlugin != AuthPlugin {
			t.Errorf("the client answered %q (responded %v)", s.hello.AuthPlugin, s.hello.AuthResponded)
		}
	})

	my.Exec(t, "drop table if exists app.load_t")
	my.Exec(t, "create table app.load_t (id int, name varchar(10))")
	file := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(file, []byte("1,a\n2,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := fmt.Sprintf("load data local infile '%s' into table load_t fields terminated by ','", file)
	t.Run("load data local refused", func(t *testing.T) {
		a.rec.reset()
		out, err := runCLI(t, append(a.cliArgs(t, "alice", "app"), "--local-infile=1", "-e", load)...)
		if err == nil {
			t.Fatalf("LOAD DATA LOCAL succeeded:\n%s", out)
		}
		if !strings.Contains(out, "ERROR") {
			t.Errorf("output %q", out)
		}
		t.Logf("refused: %s", strings.TrimSpace(out))
		if s := a.lastSession(t, true); s.err != nil {
			t.Errorf("relay: %v", s.err)
		}
		checkTranscript(t, a.rec, []string{"query " + load})
	})
	t.Run("load data local allowed", func(t *testing.T) {
		a.rec.reset()
		a.upstream = func(p *UpstreamParams) { p.AllowLoadDataLocal = true }
		defer func() { a.upstream = nil }()
		out, err := runCLI(t, append(a.cliArgs(t, "alice", "app"), "--local-infile=1", "-e", load+"; select count(*) from load_t")...)
		if err != nil {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		if s := a.lastSession(t, true); s.err != nil {
			t.Errorf("relay: %v", s.err)
		}
		if !strings.Contains(out, "2") {
			t.Errorf("output %q, want a count of 2", out)
		}
		checkTranscript(t, a.rec, []string{"query " + load, "query select count(*) from load_t"})
	})
}

// COM_CHANGE_USER is refused and the session goes on as it was.
func TestChangeUserRefused(t *testing.T) {
	a, _ := newTestAgent(t)
	c := a.rawClient(t, "alice", "app")
	a.rec.reset()
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), command(gomysql.COM_CHANGE_USER, []byte("bob\x00\x00app\x00"))[4:]...)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	code, state, msg, ok := decodeError(resp)
	if !ok || code != CodeNotSupported || state != StateSyntax || msg != ChangeUserMessage {
		t.Fatalf("answer %q", resp)
	}
	r, err := c.Execute("select current_user()")
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := r.GetString(0, 0); !strings.HasPrefix(u, "alice@") {
		t.Errorf("current_user() = %q", u)
	}
	checkTranscript(t, a.rec, []string{"query  REFUSED " + ChangeUserMessage, "query select current_user()"})
}

// COM_INIT_DB, COM_CREATE_DB and COM_DROP_DB are audited.
func TestSchemaCommands(t *testing.T) {
	a, my := newTestAgent(t)
	my.Exec(t, "grant all on `scratch_db`.* to 'alice'@'%'")
	c := a.rawClient(t, "alice", "")
	a.rec.reset()
	for _, cmd := range []byte{gomysql.COM_CREATE_DB, gomysql.COM_INIT_DB, gomysql.COM_DROP_DB} {
		c.ResetSequence()
		if err := c.WritePacket(append(make([]byte, 4), command(cmd, []byte("scratch_db"))[4:]...)); err != nil {
			t.Fatal(err)
		}
		resp, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %q", commandName(cmd), resp)
	}
	checkTranscript(t, a.rec, []string{"create_db scratch_db", "init_db scratch_db", "drop_db scratch_db"})
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
}

// A client without TLS is told to use it, in an ERR packet the driver
// shows; a client without a certificate is refused by the agent.
func TestLoginRefusals(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		code uint16
		msg  string
	}{
		{"no TLS", nil, CodeSecureTransportRequired, TLSRequiredMessage},
		{"no certificate", func() *tls.Config { c := a.clientTLS(t, "alice"); c.Certificates = nil; return c }(), CodeAccessDenied, "no client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := a.driverConfig(t, "alice", "app")
			cfg.TLS = tc.tls
			conn, err := gosql.NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			err = db.PingContext(ctx)
			var me *gosql.MySQLError
			if !errors.As(err, &me) || me.Number != tc.code || !strings.Contains(me.Message, tc.msg) {
				t.Fatalf("got %v, want error %d %q", err, tc.code, tc.msg)
			}
		})
	}
}

// A command larger than MaxPacketSize is read and dropped, never held:
// the agent's memory does not grow with it.
func TestOversizedCommandRefused(t *testing.T) {
	a, _ := newTestAgent(t)
	a.configure = func(r *Relay) { r.MaxPacketSize = 1 << 20 }
	c := a.rawClient(t, "alice", "app")
	a.rec.reset()

	const size = 48 << 20 // three packets
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := c.Conn.Conn // the TLS connection: write the packets as they go
	left, seq := size, byte(0)
	for first := true; ; first = false {
		n := min(left, maxPayload)
		if _, err := w.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}); err != nil {
			t.Fatal(err)
		}
		body := n
		if first {
			if _, err := w.Write(append([]byte{gomysql.COM_QUERY}, "insert into t values ('"...)); err != nil {
				t.Fatal(err)
			}
			body -= 1 + len("insert into t values ('")
		}
		for body > 0 {
			k := min(body, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				t.Fatal(err)
			}
			body -= k
		}
		left -= n
		seq++
		if n < maxPayload {
			break
		}
	}
	c.Sequence = seq
	resp, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	code, _, msg, ok := decodeError(resp)
	if !ok || code != CodePacketTooLarge {
		t.Fatalf("answer %q", resp)
	}
	t.Logf("client was told: %s", msg)
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while relaying and refusing %d MiB", grew>>10, size>>20)
	if grew > 16<<20 {
		t.Errorf("relaying a refused %d MiB command allocated %d MiB", size>>20, grew>>20)
	}
	s := a.lastSession(t, true)
	var pre *PacketRefusedError
	if !errors.As(s.err, &pre) || pre.Size != size {
		t.Errorf("relay ended with %v", s.err)
	}
	if s.stats.BytesFromClient < size {
		t.Errorf("stats %+v", s.stats)
	}
	evs := transcript(a.rec.all())
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "query insert into t values ('") ||
		!strings.Contains(evs[0], fmt.Sprintf("...(truncated, %d bytes) REFUSED ", size-1)) {
		t.Errorf("events %q", evs)
	}
}

// KILL QUERY with the connection ID a client saw (the proxy's) reaches the
// right session, by text and by COM_PROCESS_KILL.
func TestKillFromAnotherSession(t *testing.T) {
	a, my := newTestAgent(t)
	ctx := testContext(t)
	admin := my.Admin(t)
	victim := a.rawClient(t, "alice", "app")
	fake := victim.GetConnectionID()
	real, ok := a.lookup(fake)
	if !ok || real == fake {
		t.Fatalf("client sees connection %d, the server %d", fake, real)
	}
	sleeping := make(chan error, 1)
	go func() {
		r, err := victim.Execute("select sleep(100)")
		if err == nil {
			var v int64
			v, err = r.GetInt(0, 0)
			if err == nil && v != 1 {
				err = fmt.Errorf("sleep returned %d, not 1 (interrupted)", v)
			}
		}
		sleeping <- err
	}()
	// Wait until the query runs.
	for {
		var n int
		if err := admin.QueryRowContext(ctx, "select count(*) from information_schema.processlist where id = ? and info like 'select sleep%'", real).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the query did not start")
		case <-time.After(10 * time.Millisecond):
		}
	}
	killer := a.open(t, a.driverConfig(t, "alice", "app"))
	a.rec.reset()
	kill := fmt.Sprintf("KILL QUERY %d", fake)
	if _, err := killer.ExecContext(ctx, kill); err != nil {
		t.Fatal(err)
	}
	if err := <-sleeping; err != nil {
		var me *gomysql.MyError
		if !errors.As(err, &me) || me.Code != 1317 { // ER_QUERY_INTERRUPTED
			t.Fatalf("the killed query: %v", err)
		}
	}
	if err := victim.Ping(); err != nil {
		t.Fatalf("KILL QUERY ended the session: %v", err)
	}

	// COM_PROCESS_KILL ends the connection.
	k := a.rawClient(t, "alice", "app")
	k.ResetSequence()
	if err := k.WritePacket(append(make([]byte, 4), command(gomysql.COM_PROCESS_KILL, u32(fake))[4:]...)); err != nil {
		t.Fatal(err)
	}
	if resp, err := k.ReadPacket(); err != nil || resp[0] != gomysql.OK_HEADER {
		t.Fatalf("answer %q, %v", resp, err)
	}
	// Both kills are audited before they are forwarded, so the transcript
	// is complete now. (The probe below may still be forwarded, and
	// audited, if the server has not closed the victim's connection yet.)
	checkTranscript(t, a.rec, []string{"query " + kill, fmt.Sprintf("process_kill %d->%d", fake, real)})
	if err := waitClosed(ctx, victim); err != nil {
		t.Error(err)
	}
}

// waitClosed waits until a killed connection stops answering.
func waitClosed(ctx context.Context, c interface{ Ping() error }) error {
	for c.Ping() == nil {
		select {
		case <-ctx.Done():
			return errors.New("the killed connection still answers")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// A cursor: COM_STMT_EXECUTE opens it, COM_STMT_FETCH reads from it,
// COM_STMT_RESET closes it.
func TestCursorFetch(t *testing.T) {
	a, _ := newTestAgent(t)
	c := a.rawClient(t, "alice", "app", func(c *client.Conn) error {
		c.UnsetCapability(gomysql.CLIENT_DEPRECATE_EOF) // results end in EOF packets
		return nil
	})
	a.rec.reset()
	const q = "select seq from seq_1_to_10 where seq > ?"
	stmt, err := c.Prepare(q)
	if err != nil {
		t.Fatal(err)
	}
	// Execute with a read-only cursor: column definitions, no rows.
	c.ResetSequence()
	exec := command(gomysql.COM_STMT_EXECUTE, u32(stmt.ID), []byte{gomysql.CURSOR_TYPE_READ_ONLY}, u32(1), []byte{0, 1, gomysql.MYSQL_TYPE_LONGLONG, 0}, binary.LittleEndian.AppendUint64(nil, 7))
	readUntilEOF := func(what string, send []byte) [][]byte {
		t.Helper()
		c.ResetSequence()
		if err := c.WritePacket(append(make([]byte, 4), send[4:]...)); err != nil {
			t.Fatal(err)
		}
		var ps [][]byte
		for {
			p, err := c.ReadPacket()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if p[0] == gomysql.ERR_HEADER {
				t.Fatalf("%s: %q", what, p)
			}
			ps = append(ps, p)
			if p[0] == gomysql.EOF_HEADER && len(p) < 9 {
				if what != "execute" || len(ps) > 2 {
					return ps
				}
			}
		}
	}
	readUntilEOF("execute", exec)
	rows := readUntilEOF("fetch", command(gomysql.COM_STMT_FETCH, u32(stmt.ID), u32(2)))
	if len(rows) != 3 {
		t.Errorf("fetch returned %d packets, want 2 rows and EOF", len(rows))
	}
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), command(gomysql.COM_STMT_RESET, u32(stmt.ID))[4:]...)); err != nil {
		t.Fatal(err)
	}
	if p, err := c.ReadPacket(); err != nil || p[0] != gomysql.OK_HEADER {
		t.Fatalf("reset: %q, %v", p, err)
	}
	if err := stmt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	checkStatements(t, a.rec, []string{
		"prepare " + q,
		`execute #1 ["7"] ` + q,
		"fetch #1 rows=2 " + q,
		"reset #1 " + q,
		"close #1 " + q,
	})
}

// go-sql-driver with a password answers the caching_sha2_password
// challenge and accepts the proxy's fast-authentication OK; the password
// goes nowhere.
func TestDriverWithPassword(t *testing.T) {
	a, _ := newTestAgent(t)
	cfg := a.driverConfig(t, "alice", "app")
	cfg.Passwd = "ignored"
	db := a.open(t, cfg)
	var n int
	if err := db.QueryRowContext(testContext(t), "select 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("got %d, %v", n, err)
	}
	if s := a.lastSession(t, false); !s.hello.AuthResponded || s.hello.AuthPlugin != AuthPlugin {
		t.Errorf("the driver answered %q (responded %v)", s.hello.AuthPlugin, s.hello.AuthResponded)
	}
	closeAndCheck(t, a, db)
}
