// Package dbtest starts throwaway PostgreSQL and MariaDB servers for
// integration tests, from the system's packages, on free loopback ports,
// configured for TLS with client-certificate authentication by the
// project's own database CA.
//
// # Servers
//
// [StartPostgres] and [StartMariaDB] create a data directory under
// os.TempDir(), start the server on 127.0.0.1 with a port the kernel picked,
// wait until it accepts connections, create the users and databases the
// test asked for and stop the server (and remove the directory) in
// t.Cleanup. Each server is configured from the files that
// ca.WriteDatabaseServerFiles writes (the same files as
// `pctl auth sign --format db --out PREFIX`):
//
//	PREFIX.crt  the server certificate
//	PREFIX.key  its private key
//	PREFIX.cas  the database CA certificates trusted for client certificates
//
// [ServerFiles] makes such files with a [ca.Authority]; [ClientFiles] makes
// the client certificate a database user logs in with:
//
//	dbCA := dbtest.NewDatabaseCA(t)
//	pg := dbtest.StartPostgres(t, dbtest.Options{
//		CertPrefix: dbtest.ServerFiles(t, dbCA),
//		Users:      []string{"alice"},
//		Databases:  []string{"app"},
//	})
//	cert, key := dbtest.ClientFiles(t, dbCA, "alice")
//	conn := pg.Connect(t, "alice", "app", cert, key) // or pg.DSN(...) for psql
//
// [Shared] starts one server of each kind for all the tests of a package
// and is closed from TestMain.
//
// Programs that are not tests (the benchmark suite) start the same servers
// with [NewPostgres] and [NewMariaDB], which return an error instead of
// failing a test, and stop them with Close.
//
// Over TCP both servers accept only TLS connections that present a client
// certificate signed by a CA in PREFIX.cas whose subject is CN=<user>:
// PostgreSQL through `hostssl ... cert clientcert=verify-full` lines in
// pg_hba.conf (there are no plaintext host lines), MariaDB through
// require_secure_transport and users created with REQUIRE SUBJECT
// '/CN=<user>'. The superuser (postgres, root) connects only over the
// server's own unix socket; tests use it through the Admin and Exec helpers.
//
// # Root
//
// PostgreSQL refuses to run as root. When the test process is root, initdb
// and postgres run as the `postgres` system account (exec.Cmd credentials)
// and the server's directory is owned by it. MariaDB runs as the current
// user (with --user=root when that is root).
//
// # Skipping
//
// When a server binary is missing, the test is skipped with a message that
// names the binary and the Debian package that provides it. With
// PORTCULLIS_REQUIRE_DB=1 in the environment (as in CI) the test fails
// instead. The Debian packages are postgresql (server), postgresql-client
// (psql, pgbench), mariadb-server and mariadb-client.
package dbtest
