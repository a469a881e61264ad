package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// tlsFiles writes a CA certificate and a client certificate and key
// signed by it, as PEM files.
func tlsFiles(t *testing.T, user string) (caFile, certFile, keyFile string) {
	t.Helper()
	dbCA := dbtest.NewDatabaseCA(t)
	caFile = filepath.Join(t.TempDir(), "ca's.pem")
	if err := os.WriteFile(caFile, dbCA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = dbtest.ClientFiles(t, dbCA, user)
	return caFile, certFile, keyFile
}

func TestParseDSNPostgres(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t, "alice")
	for _, dsn := range []string{
		"postgres://alice@db.example:6432/app?sslmode=verify-full&sslrootcert=" + caFile + "&sslcert=" + certFile + "&sslkey=" + keyFile,
		"postgresql://alice@db.example:6432/app?sslmode=verify-full&sslrootcert=" + caFile + "&sslcert=" + certFile + "&sslkey=" + keyFile,
		"host=db.example port=6432 user=alice dbname=app sslmode=verify-full sslrootcert=" + caFile +
			" sslcert=" + certFile + " sslkey=" + keyFile,
	} {
		tg, err := ParseDSN(dsn)
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		c := tg.Postgres
		if tg.Protocol != "postgres" || tg.MySQL != nil || c.Host != "db.example" || c.Port != 6432 || c.User != "alice" || c.Database != "app" {
			t.Errorf("%s: %+v", dsn, tg)
		}
		if c.TLSConfig == nil || c.TLSConfig.ServerName != "db.example" || c.TLSConfig.RootCAs == nil || len(c.TLSConfig.Certificates) != 1 || len(c.Fallbacks) != 0 {
			t.Errorf("%s: TLS %+v, fallbacks %d", dsn, c.TLSConfig, len(c.Fallbacks))
		}
		if tg.Addr() != "db.example:6432" {
			t.Errorf("%s: Addr %s", dsn, tg.Addr())
		}
	}
}

func TestParseDSNMySQL(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t, "alice")
	tg, err := ParseDSN("mysql://alice:s3cret@127.0.0.1:3307/app?ssl-ca=" + caFile + "&ssl-cert=" + certFile + "&ssl-key=" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := tg.MySQL
	if tg.Protocol != "mysql" || tg.Postgres != nil || c.Net != "tcp" || c.Addr != "127.0.0.1:3307" || c.User != "alice" ||
		c.Passwd != "s3cret" || c.DBName != "app" || tg.Addr() != "127.0.0.1:3307" {
		t.Errorf("config %+v", c)
	}
	if c.TLS == nil || c.TLS.ServerName != "127.0.0.1" || c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 1 || c.TLS.InsecureSkipVerify {
		t.Errorf("TLS %+v", c.TLS)
	}

	// No TLS settings: plaintext, port 3306, no database.
	tg, err = ParseDSN("mysql://bob@db.example")
	if err != nil {
		t.Fatal(err)
	}
	if c := tg.MySQL; c.TLS != nil || c.Addr != "db.example:3306" || c.DBName != "" || c.User != "bob" {
		t.Errorf("plain: %+v", c)
	}
	// Verification with the system's CAs.
	tg, err = ParseDSN("mysql://bob@db.example/app?ssl-mode=verify_identity")
	if err != nil {
		t.Fatal(err)
	}
	if c := tg.MySQL.TLS; c == nil || c.ServerName != "db.example" || c.RootCAs != nil || len(c.Certificates) != 0 {
		t.Errorf("system CAs: TLS %+v", c)
	}
}

func TestParseDSNErrors(t *testing.T) {
	caFile, certFile, _ := tlsFiles(t, "alice")
	for _, tc := range []struct{ dsn, want string }{
		{"", "a DSN is a postgres:// or mysql:// URL"},
		{"127.0.0.1:5432", "a DSN is a postgres:// or mysql:// URL"},
		{"mongodb://x@y/z", "a DSN is a postgres:// or mysql:// URL"},
		{"POSTGRES://x@y/z", "a DSN is a postgres:// or mysql:// URL"},
		{"postgres://alice@db/app?sslmode=bogus", "PostgreSQL DSN does not parse"},
		{"host=db sslrootcert=/nonexistent sslmode=verify-full", "PostgreSQL DSN does not parse"},
		{"mysql://db.example/app", "names no user"},
		{"mysql:///app", "has no host"},
		{"mysql://alice@db/app/x", "not a database name"},
		{"mysql://alice@db/app?tls=true", `parameter "tls" is not one of`},
		{"mysql://alice@db/app?ssl-mode=REQUIRED", "is not DISABLED or VERIFY_IDENTITY"},
		{"mysql://alice@db/app?ssl-mode=DISABLED&ssl-ca=" + caFile, "drop one or the other"},
		{"mysql://alice@db/app?ssl-cert=" + certFile, "needs both its certificate and its key"},
		{"mysql://alice@db/app?ssl-ca=/nonexistent", "reading the CA certificates"},
		{"mysql://alice@db/app?ssl-ca=" + certFile + "x", "reading the CA certificates"},
		{"mysql://alice:pw@db/app?%zz", "parameters do not parse"},
		{"mysql://alice:secret@db:port/app", "not a URL"},
	} {
		_, err := ParseDSN(tc.dsn)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDSN(%q): %v, want %q", tc.dsn, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseDSN(%q): the error %q shows the password", tc.dsn, err)
		}
	}
}

func TestDatabaseTarget(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t, "alice")
	cfg := &client.DatabaseConfig{
		Name: "pg1", Protocol: client.ProtocolPostgres, Host: "proxy.example", Port: 3080, DBUser: "alice", DBName: "app",
		CAFile: caFile, CertFile: certFile, KeyFile: keyFile,
	}
	tg, err := DatabaseTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc := tg.Postgres
	if pc.Host != "proxy.example" || pc.Port != 3080 || pc.User != "alice" || pc.Database != "app" || pc.SSLNegotiation == "direct" {
		t.Errorf("postgres: %+v", pc)
	}
	if pc.TLSConfig == nil || pc.TLSConfig.ServerName != "proxy.example" || pc.TLSConfig.RootCAs == nil ||
		len(pc.TLSConfig.Certificates) != 1 || len(pc.Fallbacks) != 0 || len(pc.TLSConfig.NextProtos) != 0 {
		t.Errorf("postgres TLS %+v, %d fallbacks", pc.TLSConfig, len(pc.Fallbacks))
	}

	cfg.DirectTLS = true
	if tg, err = DatabaseTarget(cfg); err != nil {
		t.Fatal(err)
	}
	if pc := tg.Postgres; pc.SSLNegotiation != "direct" || !slices.Equal(pc.TLSConfig.NextProtos, []string{"postgresql"}) {
		t.Errorf("direct TLS: negotiation %q, ALPN %q", pc.SSLNegotiation, pc.TLSConfig.NextProtos)
	}

	cfg.Protocol, cfg.DBName = client.ProtocolMySQL, ""
	if tg, err = DatabaseTarget(cfg); err != nil {
		t.Fatal(err)
	}
	mc := tg.MySQL
	if mc.Addr != "proxy.example:3080" || mc.User != "alice" || mc.DBName != "" || mc.TLS == nil || mc.TLS.ServerName != "proxy.example" ||
		mc.TLS.RootCAs == nil || len(mc.TLS.Certificates) != 1 {
		t.Errorf("mysql: %+v, TLS %+v", mc, mc.TLS)
	}

	cfg.Protocol = "mongodb"
	if _, err := DatabaseTarget(cfg); err == nil || !strings.Contains(err.Error(), "upgrade pcl") {
		t.Errorf("unknown protocol: %v", err)
	}
}
