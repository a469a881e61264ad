package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/client"
)

// lookIn finds programs only among the files in dir.
func lookIn(dir string) func(string) (string, error) {
	return func(name string) (string, error) {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err != nil {
			return "", exec.ErrNotFound
		}
		return path, nil
	}
}

func pgConfig() *client.DatabaseConfig {
	dir := "/home/al ice/.portcullis/keys/proxy_3080"
	return &client.DatabaseConfig{
		Name: "pg1", Protocol: "postgres", Host: "proxy.example.com", Port: 5433, DBUser: "alice", DBName: "app",
		CAFile: dir + "/host-cas.pem", CertFile: dir + "/db/alice/pg1.crt", KeyFile: dir + "/it's.key",
		Expires: time.Now().Add(time.Hour),
	}
}

func TestPostgresCommand(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "psql"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := pgConfig()
	cmd, err := cfg.Command([]string{"-c", "select 1"}, client.WithLookPath(lookIn(bin)))
	if err != nil {
		t.Fatal(err)
	}
	conninfo := `host=proxy.example.com port=5433 user=alice dbname=app sslmode=verify-full ` +
		`sslrootcert='/home/al ice/.portcullis/keys/proxy_3080/host-cas.pem' ` +
		`sslcert='/home/al ice/.portcullis/keys/proxy_3080/db/alice/pg1.crt' ` +
		`sslkey='/home/al ice/.portcullis/keys/proxy_3080/it\'s.key'`
	if cmd.Name != "psql" || cmd.Path != filepath.Join(bin, "psql") || cmd.Package != "postgresql-client" ||
		!slices.Equal(cmd.Args, []string{conninfo, "-c", "select 1"}) {
		t.Errorf("command = %+v", cmd)
	}
	wantLine := `psql 'host=proxy.example.com port=5433 user=alice dbname=app sslmode=verify-full ` +
		`sslrootcert='\''/home/al ice/.portcullis/keys/proxy_3080/host-cas.pem'\'' ` +
		`sslcert='\''/home/al ice/.portcullis/keys/proxy_3080/db/alice/pg1.crt'\'' ` +
		`sslkey='\''/home/al ice/.portcullis/keys/proxy_3080/it\'\''s.key'\''' -c 'select 1'`
	if got := cmd.String(); got != wantLine {
		t.Errorf("String() =\n%s\nwant\n%s", got, wantLine)
	}
	c, err := cmd.Cmd()
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != filepath.Join(bin, "psql") || !slices.Equal(c.Args, append([]string{"psql"}, cmd.Args...)) {
		t.Errorf("exec.Cmd = %s %q", c.Path, c.Args)
	}

	// Direct TLS on the public port.
	cfg.DirectTLS = true
	cmd, err = cfg.Command(nil, client.WithLookPath(lookIn(bin)))
	if err != nil {
		t.Fatal(err)
	}
	if want := conninfo + " sslnegotiation=direct"; !slices.Equal(cmd.Args, []string{want}) {
		t.Errorf("direct TLS args = %q", cmd.Args)
	}
	env, err := cfg.Env()
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{
		"PGHOST=proxy.example.com", "PGPORT=5433", "PGUSER=alice", "PGDATABASE=app", "PGSSLMODE=verify-full",
		"PGSSLROOTCERT=" + cfg.CAFile, "PGSSLCERT=" + cfg.CertFile, "PGSSLKEY=" + cfg.KeyFile, "PGSSLNEGOTIATION=direct",
	}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("Env() = %q\nwant %q", env, wantEnv)
	}

	// psql is not installed.
	cmd, err = cfg.Command(nil, client.WithLookPath(lookIn(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "" || cmd.String()[:5] != "psql " {
		t.Errorf("command without psql = %+v", cmd)
	}
	if _, err := cmd.Cmd(); !client.IsClientNotInstalled(err) || err.Error() !=
		"psql is not installed (not found on PATH); install the postgresql-client package, e.g. sudo apt-get install postgresql-client" {
		t.Errorf("Cmd without psql: %v", err)
	}
}

func TestMySQLCommand(t *testing.T) {
	cfg := &client.DatabaseConfig{
		Name: "my1", Protocol: "mysql", Host: "proxy.example.com", Port: 3036, DBUser: "alice", DBName: "app",
		CAFile: "/p/host-cas.pem", CertFile: "/p/db/alice/my1.crt", KeyFile: "/p/alice.key",
	}
	args := []string{
		"--protocol=TCP", "--host=proxy.example.com", "--port=3036", "--user=alice",
		"--ssl-ca=/p/host-cas.pem", "--ssl-cert=/p/db/alice/my1.crt", "--ssl-key=/p/alice.key",
		"--ssl-verify-server-cert", "--database=app", "-e", "select 1",
	}
	both, mysqlOnly, mariadbOnly, alias := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(both, "mysql"), filepath.Join(both, "mariadb"),
		filepath.Join(mysqlOnly, "mysql"), filepath.Join(mariadbOnly, "mariadb"), filepath.Join(alias, "mariadb")} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("mariadb", filepath.Join(alias, "mysql")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, want string
	}{
		{"both", both, "mysql"},
		{"mysql only", mysqlOnly, "mysql"},
		{"mariadb only", mariadbOnly, "mariadb"},
		{"mysql is mariadb's alias", alias, "mariadb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := cfg.Command([]string{"-e", "select 1"}, client.WithLookPath(lookIn(tc.dir)))
			if err != nil {
				t.Fatal(err)
			}
			if cmd.Name != tc.want || cmd.Path != filepath.Join(tc.dir, tc.want) || !slices.Equal(cmd.Args, args) {
				t.Errorf("command = %+v", cmd)
			}
		})
	}
	cmd, err := cfg.Command(nil, client.WithLookPath(lookIn(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Cmd(); !client.IsClientNotInstalled(err) || err.Error() !=
		"mysql or mariadb is not installed (not found on PATH); install the mariadb-client package, e.g. sudo apt-get install mariadb-client" {
		t.Errorf("Cmd without a mysql client: %v", err)
	}
	if _, err := cfg.Env(); err == nil {
		t.Errorf("Env for mysql did not fail")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"psql":           "psql",
		"--port=5433":    "--port=5433",
		"/a/b.c_d@e:1,2": "/a/b.c_d@e:1,2",
		"":               "''",
		"a b":            "'a b'",
		"it's":           `'it'\''s'`,
		"$HOME":          "'$HOME'",
		"a\nb":           "'a\nb'",
	} {
		if got := client.ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
