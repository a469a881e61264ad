package client

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Debian packages of the database clients, named in errors.
const (
	postgresClientPackage = "postgresql-client"
	mysqlClientPackage    = "mariadb-client"
)

type commandConfig struct {
	lookPath func(file string) (string, error)
}

// A CommandOption configures [DatabaseConfig.Command].
type CommandOption func(*commandConfig)

// WithLookPath sets how the client program is found (default
// exec.LookPath).
func WithLookPath(lookPath func(file string) (string, error)) CommandOption {
	return func(c *commandConfig) {
		if lookPath != nil {
			c.lookPath = lookPath
		}
	}
}

// DatabaseCommand is the command line of a standard database client
// (psql; mysql or mariadb) that connects through the proxy with a route
// certificate.
type DatabaseCommand struct {
	// Name is the program: "psql", "mysql" or "mariadb".
	Name string
	// Path is where Name was found; "" when it is not installed.
	Path string
	// Args are the program's arguments, without its name.
	Args []string
	// Package is the Debian package that provides the program.
	Package string
}

// String is the command line, quoted for a POSIX shell.
func (c *DatabaseCommand) String() string {
	parts := make([]string, 0, 1+len(c.Args))
	parts = append(parts, ShellQuote(c.Name))
	for _, a := range c.Args {
		parts = append(parts, ShellQuote(a))
	}
	return strings.Join(parts, " ")
}

// Cmd returns the command ready to run (its streams unset), or a
// [*ClientNotInstalledError] when the program is not installed. It is not
// bound to a context: psql and mysql handle Ctrl-C themselves (cancelling
// the running statement), so the caller should not kill them on it.
func (c *DatabaseCommand) Cmd() (*exec.Cmd, error) {
	if c.Path == "" {
		program := c.Name
		if c.Name == "mysql" || c.Name == "mariadb" {
			program = "mysql or mariadb"
		}
		return nil, &ClientNotInstalledError{Program: program, Package: c.Package}
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Args[0] = c.Name
	return cmd, nil
}

// Command returns the client command line for the database, with extra
// passed through to the program after the connection arguments (for
// example -c 'select 1' for psql, -e 'select 1' for mysql).
//
// PostgreSQL: psql "host=H port=P user=U dbname=D sslmode=verify-full
// sslrootcert=CA sslcert=CERT sslkey=KEY" (with sslnegotiation=direct when
// DirectTLS). MySQL: mysql (or mariadb when mysql is absent or is MariaDB's
// alias) --protocol=TCP --host=H --port=P --user=U --ssl-ca=CA
// --ssl-cert=CERT --ssl-key=KEY --ssl-verify-server-cert --database=D.
// A program that is not installed leaves Path empty: see [DatabaseCommand.Cmd].
func (c *DatabaseConfig) Command(extra []string, opts ...CommandOption) (*DatabaseCommand, error) {
	cc := commandConfig{lookPath: exec.LookPath}
	for _, o := range opts {
		o(&cc)
	}
	var cmd DatabaseCommand
	switch c.Protocol {
	case ProtocolPostgres:
		cmd = DatabaseCommand{Name: "psql", Package: postgresClientPackage}
		cmd.Path, _ = cc.lookPath("psql")
		cmd.Args = append([]string{c.Conninfo()}, extra...)
	case ProtocolMySQL:
		cmd = DatabaseCommand{Package: mysqlClientPackage}
		cmd.Name, cmd.Path = findMySQLClient(cc.lookPath)
		cmd.Args = []string{
			"--protocol=TCP",
			"--host=" + c.Host,
			"--port=" + strconv.Itoa(c.Port),
			"--user=" + c.DBUser,
			"--ssl-ca=" + c.CAFile,
			"--ssl-cert=" + c.CertFile,
			"--ssl-key=" + c.KeyFile,
			"--ssl-verify-server-cert",
		}
		if c.DBName != "" {
			cmd.Args = append(cmd.Args, "--database="+c.DBName)
		}
		cmd.Args = append(cmd.Args, extra...)
	default:
		return nil, fmt.Errorf("database %q speaks %q, which this client does not know; upgrade pcl", c.Name, c.Protocol)
	}
	return &cmd, nil
}

// findMySQLClient picks mysql, or mariadb when mysql is absent or only
// MariaDB's deprecated alias (which warns on every start).
func findMySQLClient(lookPath func(string) (string, error)) (name, path string) {
	mysqlPath, mysqlErr := lookPath("mysql")
	mariadbPath, mariadbErr := lookPath("mariadb")
	switch {
	case mysqlErr != nil && mariadbErr != nil:
		return "mysql", ""
	case mysqlErr != nil:
		return "mariadb", mariadbPath
	case mariadbErr == nil && isAliasOf(mysqlPath, "mariadb"):
		return "mariadb", mariadbPath
	default:
		return "mysql", mysqlPath
	}
}

// isAliasOf reports whether path is a symbolic link to a program named
// name.
func isAliasOf(path, name string) bool {
	target, err := filepath.EvalSymlinks(path)
	return err == nil && filepath.Base(target) == name
}

// Conninfo is the libpq keyword/value connection string of a PostgreSQL
// database, as psql is started with: the proxy verified (verify-full)
// against CAFile, the route certificate as the client certificate.
func (c *DatabaseConfig) Conninfo() string {
	kv := []string{
		"host", c.Host,
		"port", strconv.Itoa(c.Port),
		"user", c.DBUser,
		"dbname", c.DBName,
		"sslmode", "verify-full",
		"sslrootcert", c.CAFile,
		"sslcert", c.CertFile,
		"sslkey", c.KeyFile,
	}
	if c.DirectTLS {
		kv = append(kv, "sslnegotiation", "direct")
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(conninfoQuote(kv[i+1]))
	}
	return b.String()
}

// conninfoQuote quotes a libpq connection string value when it needs it:
// empty, or holding whitespace, a single quote or a backslash.
func conninfoQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\v\f'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Env returns the environment variables that point libpq clients (psql,
// pg_dump, pgbench, ...) at the database, as NAME=VALUE. Only PostgreSQL
// has such variables.
func (c *DatabaseConfig) Env() ([]string, error) {
	if c.Protocol != ProtocolPostgres {
		return nil, errors.New("only PostgreSQL clients read their settings from the environment; use pcl db config " + c.Name + " for the others")
	}
	env := []string{
		"PGHOST=" + c.Host,
		"PGPORT=" + strconv.Itoa(c.Port),
		"PGUSER=" + c.DBUser,
	}
	if c.DBName != "" {
		env = append(env, "PGDATABASE="+c.DBName)
	}
	env = append(env,
		"PGSSLMODE=verify-full",
		"PGSSLROOTCERT="+c.CAFile,
		"PGSSLCERT="+c.CertFile,
		"PGSSLKEY="+c.KeyFile,
	)
	if c.DirectTLS {
		env = append(env, "PGSSLNEGOTIATION=direct")
	}
	return env, nil
}

// ShellQuote quotes s for a POSIX shell: unchanged when it holds only
// characters no shell treats specially, else in single quotes.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
