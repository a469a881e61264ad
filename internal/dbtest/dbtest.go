package dbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a skip for a missing
// database server into a test failure when it is "1" (CI sets it).
const RequireEnv = "PORTCULLIS_REQUIRE_DB"

// Host is the address every server listens on.
const Host = "127.0.0.1"

// startTimeout bounds how long a server may take to accept connections. It
// is generous because the test machines are shared; a healthy server is
// ready in well under a second.
const startTimeout = 60 * time.Second

// stopTimeout bounds a graceful stop before the harness kills the server.
const stopTimeout = 30 * time.Second

// Options says how a server is configured. CertPrefix is required.
type Options struct {
	// CertPrefix names the server's TLS files: PREFIX.crt (server
	// certificate), PREFIX.key (its key) and PREFIX.cas (the CA
	// certificates trusted for client certificates), as written by
	// ca.WriteDatabaseServerFiles, [ServerFiles] or
	// `pctl auth sign --format db --out PREFIX`. The files are copied into
	// the server's directory at start.
	CertPrefix string

	// Users are created as login users that authenticate only with a
	// client certificate whose subject is CN=<user>.
	Users []string

	// Databases are created, and every user in Users gets all privileges on
	// each of them.
	Databases []string

	// Owner owns the databases in PostgreSQL; empty means Users[0] (or the
	// superuser when Users is empty). MariaDB has no database owners.
	Owner string

	// Settings are extra server settings that override the harness's
	// defaults: postgresql.conf parameters (name = 'value') for PostgreSQL,
	// mariadbd options (--name=value) for MariaDB.
	Settings map[string]string
}

func (o *Options) check() error {
	if o.CertPrefix == "" {
		return errors.New("dbtest: Options.CertPrefix is empty; make the server's files with ServerFiles")
	}
	for _, ext := range []string{".crt", ".key", ".cas"} {
		if _, err := os.Stat(o.CertPrefix + ext); err != nil {
			return fmt.Errorf("dbtest: Options.CertPrefix: %v; make the server's files with ServerFiles", err)
		}
	}
	for _, u := range o.Users {
		if u == "" {
			return errors.New("dbtest: Options.Users contains an empty name")
		}
	}
	for _, d := range o.Databases {
		if d == "" {
			return errors.New("dbtest: Options.Databases contains an empty name")
		}
	}
	return nil
}

// unavailableError says that a server cannot run on this machine at all
// (a binary or system account is missing): the test skips, or fails under
// PORTCULLIS_REQUIRE_DB=1.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

// fail reports an error from starting a server: a skip (or, with
// PORTCULLIS_REQUIRE_DB=1, a failure) when the server is unavailable on
// this machine, a failure otherwise.
func fail(t testing.TB, err error) {
	t.Helper()
	var u *unavailableError
	if !errors.As(err, &u) {
		t.Fatal(err)
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%v (%s=1 requires the database servers)", err, RequireEnv)
		return
	}
	t.Skipf("%v; skipping (set %s=1 to fail instead)", err, RequireEnv)
}

// lookBinary finds an executable: in dirs first, then on PATH, then in the
// sbin directories that a non-root PATH often lacks.
func lookBinary(name, debianPackage string, dirs ...string) (string, error) {
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", &unavailableError{fmt.Sprintf("dbtest: %s is not installed; install the Debian package %s", name, debianPackage)}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// server that takes it may lose a race with another process; starters retry
// once when the server reports that the address is in use.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("dbtest: find a free port on %s: %w", Host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// addressInUse reports whether a server log says that the port was taken.
func addressInUse(log string) bool {
	return strings.Contains(strings.ToLower(log), "address already in use")
}

// baseDir makes the directory that holds one server's data, socket and
// logs, owned by owner. It lives under os.TempDir() rather than
// t.TempDir(): the server account must be able to reach it, and unix socket
// paths must stay short (about 100 bytes).
func baseDir(pattern string, owner account) (string, error) {
	parent := os.TempDir()
	if len(parent) > 60 || (owner.switchUser && !reachableByOthers(parent)) {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", fmt.Errorf("dbtest: make a server directory: %w", err)
	}
	if err := owner.chown(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// reachableByOthers reports whether another account can traverse dir and
// its ancestors.
func reachableByOthers(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if filepath.Dir(d) == d {
			return true
		}
	}
}

// copyFile copies src to dst with perm, owned by owner.
func copyFile(src, dst string, perm os.FileMode, owner account) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	if err := os.Chmod(dst, perm); err != nil { // WriteFile's perm is filtered by the umask
		return fmt.Errorf("dbtest: %w", err)
	}
	return owner.chown(dst)
}

// LogTail returns the last lines of a log file (a server's, or any
// process's), for failure messages.
func LogTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const maxBytes = 16 << 10
	if len(data) > maxBytes {
		data = data[len(data)-maxBytes:]
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// waitReady polls ping until it succeeds, the server exits, or
// startTimeout passes.
func waitReady(s *Process, what string, ping func(ctx context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = ping(ctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before accepting connections (%v)", what, s.waitErr)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v (last attempt: %v)", what, startTimeout, last)
		}
	}
}

// childEnv is the environment for the database programs: the test's own,
// without the client variables (PG*, MYSQL*) that would redirect them.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
