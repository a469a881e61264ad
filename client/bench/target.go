package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/portcullis-db/portcullis/client"
)

// A Target is a database to measure: a PostgreSQL or a MySQL connection
// configuration.
type Target struct {
	// Protocol is "postgres" or "mysql" (client.ProtocolPostgres,
	// client.ProtocolMySQL).
	Protocol string
	// Postgres is set when Protocol is "postgres".
	Postgres *pgx.ConnConfig
	// MySQL is set when Protocol is "mysql".
	MySQL *mysql.Config
}

// Dialer returns the Dialer of connections to t that run query:
// [PostgresDialer] or [MySQLDialer].
func (t *Target) Dialer(query string) Dialer {
	if t.Protocol == client.ProtocolMySQL {
		return MySQLDialer(t.MySQL, query)
	}
	return PostgresDialer(t.Postgres, query)
}

// Addr is the address connections go to, host:port.
func (t *Target) Addr() string {
	if t.Protocol == client.ProtocolMySQL {
		return t.MySQL.Addr
	}
	return net.JoinHostPort(t.Postgres.Host, strconv.Itoa(int(t.Postgres.Port)))
}

// ParseDSN parses a connection string:
//
//   - PostgreSQL: a postgres:// (or postgresql://) URL or a libpq
//     keyword/value string ("host=H port=P user=U dbname=D sslmode=verify-full
//     sslrootcert=CA sslcert=CERT sslkey=KEY"), parsed by pgx.ParseConfig
//     with everything it accepts, the PG* environment variables included.
//   - MySQL: mysql://USER[:PASSWORD]@HOST[:PORT][/DBNAME][?PARAMS] with the
//     TLS settings named as the mysql client's options: ssl-ca=FILE (the CAs
//     that verify the server), ssl-cert=FILE and ssl-key=FILE (the client
//     certificate), ssl-mode=DISABLED|VERIFY_IDENTITY. With any ssl-* file
//     the mode defaults to VERIFY_IDENTITY (TLS, the server's certificate
//     checked against ssl-ca, or the system's CAs, for HOST); without any,
//     to DISABLED (plaintext). The port defaults to 3306. Other parameters
//     are refused.
func ParseDSN(dsn string) (*Target, error) {
	switch {
	case strings.HasPrefix(dsn, "mysql://"):
		cfg, err := parseMySQLURL(dsn)
		if err != nil {
			return nil, err
		}
		return &Target{Protocol: client.ProtocolMySQL, MySQL: cfg}, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"),
		!strings.Contains(dsn, "://") && strings.Contains(dsn, "="):
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("bench: the PostgreSQL DSN does not parse: %w", err)
		}
		return &Target{Protocol: client.ProtocolPostgres, Postgres: cfg}, nil
	}
	return nil, errors.New("bench: a DSN is a postgres:// or mysql:// URL or a libpq \"host=... dbname=...\" string")
}

// parseMySQLURL parses mysql://USER[:PASSWORD]@HOST[:PORT][/DBNAME][?PARAMS].
func parseMySQLURL(dsn string) (*mysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error repeats the URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("bench: the MySQL DSN is not a URL: %w", err)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("bench: the MySQL DSN has no host; write mysql://USER@HOST:PORT/DBNAME")
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Logger = &mysql.NopLogger{}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	if cfg.User == "" {
		return nil, errors.New("bench: the MySQL DSN names no user; write mysql://USER@HOST:PORT/DBNAME")
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("bench: %q in the MySQL DSN is not a database name", cfg.DBName)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("bench: the MySQL DSN's parameters do not parse: %w", err)
	}
	var caFile, certFile, keyFile, mode string
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "ssl-ca":
			caFile = v
		case "ssl-cert":
			certFile = v
		case "ssl-key":
			keyFile = v
		case "ssl-mode":
			mode = strings.ToUpper(v)
		default:
			return nil, fmt.Errorf("bench: the MySQL DSN parameter %q is not one of ssl-ca, ssl-cert, ssl-key, ssl-mode", k)
		}
	}
	if mode == "" {
		mode = "DISABLED"
		if caFile != "" || certFile != "" || keyFile != "" {
			mode = "VERIFY_IDENTITY"
		}
	}
	switch mode {
	case "DISABLED":
		if caFile != "" || certFile != "" || keyFile != "" {
			return nil, errors.New("bench: the MySQL DSN has ssl-mode=DISABLED and ssl-* files; drop one or the other")
		}
	case "VERIFY_IDENTITY":
		cfg.TLS, err = tlsConfig(caFile, certFile, keyFile, host)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("bench: ssl-mode=%s in the MySQL DSN is not DISABLED or VERIFY_IDENTITY", mode)
	}
	return cfg, nil
}

// tlsConfig verifies the server's certificate for serverName against the
// CAs in caFile (the system's when empty) and presents the client
// certificate in certFile/keyFile (none when both are empty).
func tlsConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		caPEM, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("bench: reading the CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("bench: %s holds no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("bench: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("bench: loading the client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// DatabaseTarget is the target that reaches a database through the proxy
// with a route certificate, configured as the standard clients are by
// [client.DatabaseConfig.Command]: PostgreSQL as psql with sslmode=verify-full
// (the proxy's certificate verified against CAFile for Host), direct TLS
// with ALPN "postgresql" when cfg.DirectTLS; MySQL as mysql
// --ssl-verify-server-cert (the same check for Host) with the client
// certificate.
func DatabaseTarget(cfg *client.DatabaseConfig) (*Target, error) {
	switch cfg.Protocol {
	case client.ProtocolPostgres:
		pc, err := pgx.ParseConfig(cfg.Conninfo())
		if err != nil {
			return nil, fmt.Errorf("bench: the connection settings of %s: %w", cfg.Name, err)
		}
		return &Target{Protocol: client.ProtocolPostgres, Postgres: pc}, nil
	case client.ProtocolMySQL:
		tc, err := tlsConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.Host)
		if err != nil {
			return nil, err
		}
		mc := mysql.NewConfig()
		mc.Net, mc.Addr = "tcp", cfg.Addr()
		mc.User, mc.DBName = cfg.DBUser, cfg.DBName
		mc.TLS = tc
		mc.Logger = &mysql.NopLogger{}
		return &Target{Protocol: client.ProtocolMySQL, MySQL: mc}, nil
	}
	return nil, fmt.Errorf("database %q speaks %q, which this client does not know; upgrade pcl", cfg.Name, cfg.Protocol)
}
