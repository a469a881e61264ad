package main

import (
	"context"
	"net"
	"strconv"
	"testing"
)

// TestPostgresOnThePublicPort connects with pgx to the proxy's public TLS
// port with sslnegotiation=direct: TLS from the first byte with ALPN
// "postgresql", as psql 17 does, routed by the proxy's ALPN router to the
// same PostgreSQL handling as the native port.
func TestPostgresOnThePublicPort(t *testing.T) {
	c := startPGCluster(t)
	u := c.addUser(t, "carol", []string{"access"})
	cfg := u.pgxConfig(t)
	host, port, err := net.SplitHostPort(c.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg.Host, cfg.Port = host, uint16(p)
	cfg.SSLNegotiation = "direct"
	if cfg.TLSConfig == nil {
		t.Fatal("pgx config has no TLS")
	}
	cfg.TLSConfig.NextProtos = []string{"postgresql"}
	conn := connectWith(t, cfg)
	var who string
	var n int
	if err := conn.QueryRow(context.Background(), "select current_user, 6*7").Scan(&who, &n); err != nil {
		t.Fatal(err)
	}
	if who != "carol" || n != 42 {
		t.Fatalf("got %s %d, want carol 42", who, n)
	}
	if got := conn.PgConn().Conn().RemoteAddr().String(); got != c.proxyAddr {
		t.Errorf("connected to %s, not the proxy's public port %s", got, c.proxyAddr)
	}
}
