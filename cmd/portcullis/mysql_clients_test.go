package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gmclient "github.com/go-mysql-org/go-mysql/client"

	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/protocol/mysql"
)

// TestMySQLClientsThroughTheCluster drives real clients (go-sql-driver,
// the mariadb client, go-mysql for what the others cannot send) through
// proxy -> reverse tunnel -> agent -> MariaDB, and checks that the audit
// log holds exactly what each session ran, as alice, in order.
func TestMySQLClientsThroughTheCluster(t *testing.T) {
	t.Parallel()
	requireMariaDBClient(t)
	// my2 is the same MariaDB with LOAD DATA LOCAL INFILE allowed and a
	// command limit of 1 MiB.
	c := startMyClusterWith(t, myClusterOptions{databases: []string{
		`{name: my2, protocol: mysql, uri: "$ADDR", allow_load_data_local: true, max_packet_size: 1048576}`,
	}})
	alice := c.alice
	my2 := alice.route(t, "my2")
	ctx := context.Background()

	t.Run("go-sql-driver text queries", func(t *testing.T) {
		const create = "create table items (id bigint primary key, score double, name varchar(40), data varbinary(40), note varchar(40), at datetime(6), ok bool)"
		s := c.sessions(t, "alice", 1, func() {
			conn := myConn(t, alice.driverConfig(t, nil))
			mustExecMy(t, conn, create)
			mustExecMy(t, conn, "insert into items (id, name) values (1, 'one')")
			var name string
			if err := conn.QueryRowContext(ctx, "select name from items where id = 1").Scan(&name); err != nil || name != "one" {
				t.Errorf("select name: %q, %v", name, err)
			}
			conn.Close()
		})
		checkMySession(t, s[0],
			"start",
			"query: "+create,
			"query: insert into items (id, name) values (1, 'one')",
			"query: select name from items where id = 1",
			"end")
	})

	t.Run("go-sql-driver prepared statements with parameters of each type", func(t *testing.T) {
		const insert = "insert into items (id, score, name, data, note, at, ok) values (?, ?, ?, ?, ?, ?, ?)"
		const lookup = "select name, data, note, at, ok from items where id = ? and score > ?"
		at := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
		s := c.sessions(t, "alice", 1, func() {
			mc := alice.driverConfig(t, nil)
			mc.ParseTime = true
			conn := myConn(t, mc)
			// Without interpolateParams, go-sql-driver prepares, executes
			// and closes a statement for each call with arguments.
			mustExecMy(t, conn, insert, int64(2), float64(2.25), "twö", []byte{0xca, 0xfe}, nil, at, true)
			stmt, err := conn.PrepareContext(ctx, lookup)
			if err != nil {
				t.Fatal(err)
			}
			var (
				name  string
				data  []byte
				note  sql.NullString
				gotAt time.Time
				ok    bool
			)
			if err := stmt.QueryRowContext(ctx, int64(2), 1.5).Scan(&name, &data, &note, &gotAt, &ok); err != nil ||
				name != "twö" || !bytes.Equal(data, []byte{0xca, 0xfe}) || note.Valid || !gotAt.Equal(at) || !ok {
				t.Errorf("prepared select: %q %x %v %v %v, %v", name, data, note, gotAt, ok, err)
			}
			stmt.Close()
			conn.Close()
		})
		// go-sql-driver sends int64 as LONGLONG, float64 as DOUBLE, bool
		// as TINY, string, []byte and time.Time as strings: the audit
		// renders each in decimal or as text, bytes that are not UTF-8 as
		// \x and hexadecimal, NULL as NULL.
		checkMySession(t, s[0],
			"start",
			"prepare: "+insert,
			`execute: `+insert+` [2, 2.25, twö, \xcafe, NULL, 2024-02-29 13:14:15.123456, 1]`,
			"close: "+insert,
			"prepare: "+lookup,
			"execute: "+lookup+" [2, 1.5]",
			"close: "+lookup,
			"end")
		// Execute and close name the statement the server prepared.
		for _, pair := range [][2]auditEvent{{s[0][2], s[0][3]}, {s[0][5], s[0][6]}} {
			x, cl := pair[0]["statement_id"], pair[1]["statement_id"]
			if x == nil || x == float64(0) || x != cl {
				t.Errorf("execute and close name statements %v and %v; want the same, prepared one", x, cl)
			}
		}
		if s[0][2]["statement_id"] == s[0][5]["statement_id"] {
			t.Errorf("two prepared statements were audited with the same ID %v", s[0][2]["statement_id"])
		}
	})

	t.Run("go-sql-driver transactions", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			conn := myConn(t, alice.driverConfig(t, nil))
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "insert into items (id, name) values (3, 'three')"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			tx, err = conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "insert into items (id, name) values (4, 'four')"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRowContext(ctx, "select count(*) from items where id in (3, 4)").Scan(&n); err != nil || n != 1 {
				t.Errorf("after a commit and a rollback: %d rows, %v; want 1", n, err)
			}
			conn.Close()
		})
		checkMySession(t, s[0],
			"start",
			"query: START TRANSACTION",
			"query: insert into items (id, name) values (3, 'three')",
			"query: COMMIT",
			"query: START TRANSACTION",
			"query: insert into items (id, name) values (4, 'four')",
			"query: ROLLBACK",
			"query: select count(*) from items where id in (3, 4)",
			"end")
	})

	t.Run("go-sql-driver multi-statements", func(t *testing.T) {
		const multi = "insert into items (id, name) values (5, 'five'); insert into items (id, name) values (6, 'six'); update items set note = 'multi' where id in (5, 6)"
		const twoResults = "select count(*) from items where note = 'multi'; select name from items where id = 6"
		s := c.sessions(t, "alice", 1, func() {
			mc := alice.driverConfig(t, nil)
			mc.MultiStatements = true
			conn := myConn(t, mc)
			mustExecMy(t, conn, multi)
			rows, err := conn.QueryContext(ctx, twoResults)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			var name string
			if !rows.Next() || rows.Scan(&n) != nil || !rows.NextResultSet() || !rows.Next() || rows.Scan(&name) != nil || n != 2 || name != "six" {
				t.Errorf("two result sets: %d, %q, %v; want 2, six", n, name, rows.Err())
			}
			rows.Close()
			conn.Close()
		})
		// Each COM_QUERY is one event, whatever it holds.
		checkMySession(t, s[0], "start", "query: "+multi, "query: "+twoResults, "end")
	})

	t.Run("go-sql-driver 100 MB result", func(t *testing.T) {
		const query = "select repeat('x', 1000) from seq_1_to_100000"
		s := c.sessions(t, "alice", 1, func() {
			conn := myConn(t, alice.driverConfig(t, nil))
			rows, err := conn.QueryContext(ctx, query)
			if err != nil {
				t.Fatal(err)
			}
			var n, size int
			var v sql.RawBytes
			for rows.Next() {
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				n++
				size += len(v)
			}
			if err := rows.Err(); err != nil || n != 100000 || size != 100_000_000 {
				t.Errorf("streamed %d rows, %d bytes (%v); want 100000 rows, 100000000 bytes", n, size, err)
			}
			rows.Close()
			conn.Close()
		})
		checkMySession(t, s[0], "start", "query: "+query, "end")
		end := s[0][len(s[0])-1]
		if out, _ := end["bytes_out"].(float64); out < 100_000_000 {
			t.Errorf("db.session.end counts %v bytes to the client, want more than 100 MB", end["bytes_out"])
		}
	})

	t.Run("mariadb -e", func(t *testing.T) {
		stmts := []string{
			"create table cli (id int, name varchar(20))",
			"insert into cli values (1, 'uno'), (2, 'dos')",
			"select count(*), current_user() from cli",
		}
		s := c.sessions(t, "alice", 1, func() {
			stdout, stderr, err := alice.mariadb(t, nil, "-N", "-B", "-e", strings.Join(stmts, "; "))
			if err != nil || stdout != "2\talice@%\n" {
				t.Errorf("mariadb -e: %v\n%s%s", err, stdout, stderr)
			}
		})
		checkMySession(t, s[0], "start",
			"query: "+stmts[0], "query: "+stmts[1], "query: "+stmts[2], "end")
	})

	csv := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(csv, []byte("10,diez\n11,once\n12,doce\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := fmt.Sprintf("load data local infile '%s' into table cli fields terminated by ','", csv)

	t.Run("LOAD DATA LOCAL INFILE refused by default", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			stdout, stderr, err := alice.mariadb(t, nil, "--local-infile=1", "-N", "-B", "-e", load)
			// The agent does not pass CLIENT_LOCAL_FILES on to the
			// database, which refuses the statement with its own error.
			const want = "ERROR 4166 (HY000) at line 1: The used command is not allowed because the MariaDB server or client has disabled the local infile capability"
			if err == nil || !strings.HasSuffix(strings.TrimSpace(stderr), "\n"+want) {
				t.Errorf("mariadb --local-infile=1 -e %q: %v\n%s%s\nwant %s", load, err, stdout, stderr, want)
			}
		})
		checkMySession(t, s[0], "start", "query: "+load, "end")
	})

	t.Run("LOAD DATA LOCAL INFILE on a database that allows it", func(t *testing.T) {
		const count = "select count(*) from cli where id >= 10"
		s := c.sessions(t, "alice", 1, func() {
			stdout, stderr, err := alice.mariadb(t, my2, "--local-infile=1", "-N", "-B", "-e", load+"; "+count)
			if err != nil || stdout != "3\n" {
				t.Errorf("mariadb --local-infile=1 on my2: %v\n%s%s; want 3 rows loaded", err, stdout, stderr)
			}
		})
		// The file's contents are data, not statements: not audited.
		checkMySession(t, s[0], "start", "query: "+load, "query: "+count, "end")
		if s[0][0].str("db_service") != "my2" {
			t.Errorf("the session is recorded on %q, want my2", s[0][0].str("db_service"))
		}
	})

	// The query is killed from a second session of alice's with the ID
	// CONNECTION_ID() returned: the database's own, passed on unchanged.
	t.Run("KILL QUERY with the database's connection ID", func(t *testing.T) {
		var realID int64
		s := c.sessions(t, "alice", 2, func() {
			mc := alice.driverConfig(t, nil)
			a := myConn(t, mc)
			if err := a.QueryRowContext(ctx, "select connection_id()").Scan(&realID); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				var v int
				done <- a.QueryRowContext(ctx, "select sleep(30)").Scan(&v)
			}()
			if running := c.waitRunning(t, "select sleep(30)"); running != realID {
				t.Errorf("CONNECTION_ID() through the proxy is %d, the database runs the session as %d", realID, running)
			}
			b := myConn(t, mc)
			mustExecMy(t, b, fmt.Sprintf("kill query %d", realID))
			b.Close()
			select {
			case err := <-done:
				if !isMyError(err, 1317) {
					t.Errorf("the killed query returned %v; want error 1317 (Query execution was interrupted)", err)
				}
			case <-time.After(25 * time.Second):
				t.Fatal("the query was not killed")
			}
			// The session goes on.
			var one int
			if err := a.QueryRowContext(ctx, "select 1").Scan(&one); err != nil || one != 1 {
				t.Errorf("select 1 after the kill: %d, %v", one, err)
			}
			a.Close()
		})
		checkMySession(t, s[0], "start", "query: select connection_id()", "query: select sleep(30)", "query: select 1", "end")
		checkMySession(t, s[1], "start", fmt.Sprintf("query: kill query %d", realID), "end")
	})

	// The mariadb client's Ctrl-C sends KILL QUERY with the connection ID
	// of the proxy's greeting from a second connection; the agent
	// translates it to the database's.
	t.Run("mariadb Ctrl-C kills the query by the greeting's connection ID", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		var realID int64
		s := c.sessions(t, "alice", 2, func() {
			x := alice.mariadbCmd(t, nil, "-N", "-B", "-e", "select sleep(30)")
			x.Stdout, x.Stderr = &stdout, &stderr
			if err := x.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(time.Minute, func() { x.Process.Kill() })
			defer timer.Stop()
			realID = c.waitRunning(t, "select sleep(30)")
			if err := x.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			x.Wait()
		})
		if !strings.Contains(stdout.String(), "query killed") || !strings.Contains(stderr.String(), "ERROR 1317 (70100) at line 1: Query execution was interrupted") {
			t.Errorf("mariadb after Ctrl-C:\n%s%s\nwant the query killed with error 1317", stdout.String(), stderr.String())
		}
		checkMySession(t, s[0], "start", "query: select sleep(30)", "end")
		kill := regexp.MustCompile(`^query: KILL QUERY (\d+)$`)
		if len(s[1]) != 3 || !kill.MatchString(describeMy(s[1][1])) {
			t.Fatalf("the Ctrl-C session:\n\t%s\nwant start, KILL QUERY ID, end", strings.Join(describeAllMy(s[1]), "\n\t"))
		}
		// The client named the session by the greeting's ID, which is not
		// the database's: the kill worked because the agent translated it.
		if id, _ := strconv.ParseInt(kill.FindStringSubmatch(describeMy(s[1][1]))[1], 10, 64); id == realID {
			t.Errorf("the client killed the database's connection ID %d, not the greeting's", id)
		}
	})

	t.Run("COM_CHANGE_USER refused", func(t *testing.T) {
		s := c.sessions(t, "alice", 1, func() {
			gc := goMySQLConn(t, alice, nil)
			if _, err := gc.Execute("select 1"); err != nil {
				t.Fatal(err)
			}
			// COM_CHANGE_USER to root, no auth response, database app.
			pkt := append(make([]byte, 4), 0x11)
			pkt = append(pkt, "root\x00\x00app\x00"...)
			gc.ResetSequence()
			if err := gc.WritePacket(pkt); err != nil {
				t.Fatal(err)
			}
			code, msg := readErr(t, gc)
			if code != mysql.CodeNotSupported || msg != mysql.ChangeUserMessage {
				t.Errorf("COM_CHANGE_USER answered %d %q; want %d %q", code, msg, mysql.CodeNotSupported, mysql.ChangeUserMessage)
			}
			// The session goes on, as alice.
			r, err := gc.Execute("select current_user()")
			if err != nil {
				t.Fatal(err)
			}
			if u, _ := r.GetString(0, 0); u != "alice@%" {
				t.Errorf("current_user() after the refused COM_CHANGE_USER: %q", u)
			}
			gc.Quit()
		})
		checkMySession(t, s[0], "start", "query: select 1", "query refused: "+mysql.ChangeUserMessage, "query: select current_user()", "end")
	})

	// my2 takes commands of at most 1 MiB: a 2 MiB COM_QUERY is refused
	// with ER_NET_PACKET_TOO_LARGE and ends the session; the relay reads
	// and drops it as it comes, never holding it.
	t.Run("oversized command refused", func(t *testing.T) {
		size := 2 << 20
		const reason = "a command of 2097152 bytes exceeds the limit of 1048576 bytes; send large data in smaller statements"
		s := c.sessions(t, "alice", 1, func() {
			gc := goMySQLConn(t, alice, my2)
			// One packet: header, COM_QUERY, then the statement streamed.
			head := []byte{byte(size), byte(size >> 8), byte(size >> 16), 0, 0x03}
			head = append(head, "select '"...)
			if _, err := gc.Conn.Conn.Write(head); err != nil {
				t.Fatal(err)
			}
			chunk := bytes.Repeat([]byte{'x'}, 64<<10)
			for left := size - 1 - len("select '") - 1; left > 0; left -= len(chunk) {
				if _, err := gc.Conn.Conn.Write(chunk[:min(left, len(chunk))]); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := gc.Conn.Conn.Write([]byte{'\''}); err != nil {
				t.Fatal(err)
			}
			gc.Sequence = 1 // the packet's answer
			code, msg := readErr(t, gc)
			if code != mysql.CodePacketTooLarge || msg != reason {
				t.Errorf("the oversized command was answered %d %q; want %d %q", code, msg, mysql.CodePacketTooLarge, reason)
			}
			gc.Close()
		})
		checkMySession(t, s[0], "start", "query refused: "+reason, "end")
		// The event keeps the start of the statement that came with the
		// packet's header (how much depends on how the bytes arrived) and
		// the statement's size.
		if q := s[0][1].str("query"); !strings.HasPrefix(q, "select '") || !strings.HasSuffix(q, "...(truncated, 2097151 bytes)") {
			t.Errorf("the refused command is recorded as %.80q; want its start and its size", q)
		}
		end := s[0][2]
		if r := end.str("reason"); r != reason {
			t.Errorf("db.session.end says %q; want %q", r, reason)
		}
		// The relay read the whole command (and dropped it) so that the
		// client could read the refusal.
		if in, _ := end["bytes_in"].(float64); in < float64(size) {
			t.Errorf("db.session.end counts %v bytes from the client; want the %d of the command", end["bytes_in"], size)
		}
	})
}

// goMySQLConn logs in as u with go-mysql's client (which can send any
// command) through the proxy's MySQL port, to the database of cfg (u's
// route for my1 when nil).
func goMySQLConn(t *testing.T, u *myUser, cfg *client.DatabaseConfig) *gmclient.Conn {
	t.Helper()
	mc := u.driverConfig(t, cfg)
	gc, err := gmclient.ConnectWithTimeout(mc.Addr, mc.User, "", mc.DBName, 20*time.Second, func(c *gmclient.Conn) error {
		c.SetTLSConfig(mc.TLS)
		return nil
	})
	if err != nil {
		t.Fatalf("go-mysql through the proxy: %v", err)
	}
	t.Cleanup(func() { gc.Close() })
	return gc
}

// readErr reads an ERR packet and returns its code and message.
func readErr(t *testing.T, gc *gmclient.Conn) (uint16, string) {
	t.Helper()
	gc.SetReadDeadline(time.Now().Add(30 * time.Second))
	p, err := gc.ReadPacket()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if len(p) < 9 || p[0] != 0xff || p[3] != '#' {
		t.Fatalf("the answer is not an ERR packet: %q", p)
	}
	return binary.LittleEndian.Uint16(p[1:]), string(p[9:])
}
