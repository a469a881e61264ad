package bench

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// runBoth runs query on tg for a moment with two workers, keeping
// connections and with a connection per query, and checks that nothing
// failed.
func runBoth(t *testing.T, tg *Target, query string) {
	t.Helper()
	for _, connect := range []bool{false, true} {
		res, err := Run(context.Background(), Config{Concurrency: 2, Duration: 300 * time.Millisecond, Connect: connect}, tg.Dialer(query))
		if err != nil {
			t.Fatalf("%s (connect %v): %v", query, connect, err)
		}
		if res.Ops == 0 || res.Errors != 0 || res.Latency.Count() != res.Ops {
			t.Errorf("%s (connect %v): ops %d errors %d (%v)", query, connect, res.Ops, res.Errors, res.FirstError)
		}
		t.Logf("%s (connect %v): %d ops, %.0f/s, p50 %v", query, connect, res.Ops, res.Throughput(), res.Latency.Quantile(0.5))
	}
}

// twice runs query twice on one connection: the second succeeds only if
// the first's result was read to its end.
func twice(t *testing.T, tg *Target, query string) Conn {
	t.Helper()
	ctx := context.Background()
	c, err := tg.Dialer(query)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i := range 2 {
		if err := c.Do(ctx); err != nil {
			t.Fatalf("%s, time %d: %v", query, i+1, err)
		}
	}
	return c
}

func TestPostgresDialer(t *testing.T) {
	pg := shared.Postgres(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), "alice")
	tg, err := ParseDSN(pg.DSN("alice", "app", cert, key))
	if err != nil {
		t.Fatal(err)
	}
	runBoth(t, tg, "SELECT 1")

	for _, q := range []string{
		"select generate_series(1, 100000)",
		"select 1; select 'two', 3; select generate_series(1, 1000)",
		"  COPY (select generate_series(1, 100000)) TO STDOUT",
		"set application_name = 'bench'",
	} {
		twice(t, tg, q)
	}

	// The connection is TLS with the client certificate.
	c := twice(t, tg, "select 1").(*pgConn)
	tc, ok := c.pc.Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("the connection is a %T, not TLS", c.pc.Conn())
	}
	if st := tc.ConnectionState(); !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		t.Errorf("TLS state %+v", st)
	}

	// A query that fails ends the run at once with the server's error.
	started := time.Now()
	_, err = Run(context.Background(), Config{Duration: time.Minute}, tg.Dialer("SELEC 1"))
	if err == nil || !strings.Contains(err.Error(), "syntax error") || time.Since(started) > 30*time.Second {
		t.Errorf("a bad query: %v after %v", err, time.Since(started))
	}
	// So does a certificate the server does not take.
	other, otherKey := dbtest.ClientFiles(t, dbtest.NewDatabaseCA(t), "alice")
	bad, err := ParseDSN(pg.DSN("alice", "app", other, otherKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{Duration: time.Minute}, bad.Dialer("select 1")); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
}

func TestMySQLDialer(t *testing.T) {
	my := shared.MariaDB(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), "alice")
	dsn := fmt.Sprintf("mysql://alice@%s/app?ssl-ca=%s&ssl-cert=%s&ssl-key=%s",
		my.Addr(), url.QueryEscape(my.CAFile), url.QueryEscape(cert), url.QueryEscape(key))
	tg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	runBoth(t, tg, "SELECT 1")

	for _, q := range []string{
		"select seq from seq_1_to_100000",
		"select repeat('x', 100000)",
		"do 1",
	} {
		twice(t, tg, q)
	}

	// The connection is TLS: the server says which cipher it uses.
	c := twice(t, tg, "select 1").(*myConn)
	rows, err := c.q.QueryContext(context.Background(), "show session status like 'Ssl_cipher'", nil)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]driver.Value, 2)
	if err := rows.Next(row); err != nil {
		t.Fatal(err)
	}
	if cipher := fmt.Sprintf("%s", row[1]); cipher == "" {
		t.Error("the MySQL connection is not encrypted")
	}
	if err := rows.Next(row); err != io.EOF {
		t.Errorf("more than one row: %v", err)
	}
	rows.Close()

	_, err = Run(context.Background(), Config{Duration: time.Minute}, tg.Dialer("SELEC 1"))
	if err == nil || !strings.Contains(err.Error(), "SQL syntax") {
		t.Errorf("a bad query: %v", err)
	}
}
