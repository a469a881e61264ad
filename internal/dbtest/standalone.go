package dbtest

import "github.com/portcullis-db/portcullis/ca"

// Servers for programs that are not tests (the benchmark suite): the same
// servers as StartPostgres and StartMariaDB, returned with an error rather
// than through testing.TB, stopped by Close.

// NewPostgres starts a PostgreSQL server configured by opts, as
// [StartPostgres] does, for a program that is not a test. The caller must
// call [Postgres.Close]. A missing installation is an error that names the
// Debian package to install.
func NewPostgres(opts Options) (*Postgres, error) { return startPostgres(opts) }

// NewMariaDB starts a MariaDB server configured by opts, as
// [StartMariaDB] does, for a program that is not a test. The caller must
// call [MariaDB.Close]. A missing installation is an error that names the
// Debian package to install.
func NewMariaDB(opts Options) (*MariaDB, error) { return startMariaDB(opts) }

// WriteServerFiles makes a server key and a certificate signed by dbCA
// for hosts (default: 127.0.0.1, localhost and ::1) and writes them as
// PREFIX.crt, PREFIX.key and PREFIX.cas, as [ServerFiles] does, for a
// program that is not a test.
func WriteServerFiles(dbCA *ca.Authority, prefix string, hosts ...string) error {
	return writeServerFiles(dbCA, prefix, hosts)
}

// Close stops the server, as [Postgres.Stop] does, and removes its
// directory. A server from [StartPostgres] is closed when its test ends;
// call Close only for one from [NewPostgres].
func (p *Postgres) Close() error { return p.close() }

// Close stops the server, as [MariaDB.Stop] does, and removes its
// directory. A server from [StartMariaDB] is closed when its test ends;
// call Close only for one from [NewMariaDB].
func (m *MariaDB) Close() error { return m.close() }
