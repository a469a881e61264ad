package dbtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/portcullis-db/portcullis/ca"
)

// Shared is one PostgreSQL and one MariaDB server for all the tests of a
// package: each starts on first use and both stop in Close, which
// [Shared.RunTests] calls after m.Run. The zero value is ready to use; set Options
// before the first call (its CertPrefix is ignored: Shared makes its own
// database CA, see [Shared.CA], and server files).
//
//	var shared = &dbtest.Shared{Options: dbtest.Options{Users: []string{"alice"}, Databases: []string{"app"}}}
//
//	func TestMain(m *testing.M) { os.Exit(shared.RunTests(m)) }
//
//	func TestX(t *testing.T) {
//		pg := shared.Postgres(t)
//		cert, key := dbtest.ClientFiles(t, shared.CA(t), "alice")
//		conn := pg.Connect(t, "alice", "app", cert, key)
//		...
//	}
//
// Tests must not Stop a shared server or depend on state that other tests
// change. A server that cannot start fails (or skips) every test that asks
// for it, without being retried.
type Shared struct {
	Options Options

	mu       sync.Mutex
	dir      string // holds the CA's server files
	dbCA     *ca.Authority
	prefix   string
	caErr    error
	pg       *Postgres
	pgErr    error
	pgTried  bool
	my       *MariaDB
	myErr    error
	myTried  bool
	isClosed bool
}

// CA is the database CA that signed the shared servers' certificates and
// that they trust for client certificates; make client certificates with
// [ClientFiles](t, s.CA(t), user).
func (s *Shared) CA(t testing.TB) *ca.Authority {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.initLocked(); err != nil {
		t.Fatal(err)
	}
	return s.dbCA
}

// Postgres returns the shared PostgreSQL server, starting it on first use.
func (s *Shared) Postgres(t testing.TB) *Postgres {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pgTried {
		s.pgTried = true
		if s.pgErr = s.initLocked(); s.pgErr == nil {
			opts := s.Options
			opts.CertPrefix = s.prefix
			s.pg, s.pgErr = startPostgres(opts)
		}
	}
	if s.pgErr != nil {
		fail(t, s.pgErr)
	}
	return s.pg
}

// MariaDB returns the shared MariaDB server, starting it on first use.
func (s *Shared) MariaDB(t testing.TB) *MariaDB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.myTried {
		s.myTried = true
		if s.myErr = s.initLocked(); s.myErr == nil {
			opts := s.Options
			opts.CertPrefix = s.prefix
			s.my, s.myErr = startMariaDB(opts)
		}
	}
	if s.myErr != nil {
		fail(t, s.myErr)
	}
	return s.my
}

// initLocked makes the CA and the server files once.
func (s *Shared) initLocked() error {
	if s.isClosed {
		return fmt.Errorf("dbtest: the Shared servers are closed; call Close only after m.Run")
	}
	if s.dbCA != nil || s.caErr != nil {
		return s.caErr
	}
	s.dbCA, s.caErr = ca.NewAuthority(ca.DatabaseCA, "dbtest", nil, nil)
	if s.caErr != nil {
		return s.caErr
	}
	if s.dir, s.caErr = os.MkdirTemp("", "dbtest-shared-"); s.caErr != nil {
		return s.caErr
	}
	s.prefix = filepath.Join(s.dir, "server")
	s.caErr = writeServerFiles(s.dbCA, s.prefix, nil)
	return s.caErr
}

// RunTests is a package's TestMain: it runs the tests, stops the shared
// servers, and then fails the run if the tests left a goroutine behind
// (goleak), and returns the exit code.
func (s *Shared) RunTests(m *testing.M) int {
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// Close stops the servers that were started and removes their files. It
// returns the first error; later calls do nothing.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return nil
	}
	s.isClosed = true
	var errs []error
	if s.pg != nil {
		errs = append(errs, s.pg.close())
	}
	if s.my != nil {
		errs = append(errs, s.my.close())
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
