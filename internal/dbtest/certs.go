package dbtest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
)

// certTTL is the lifetime of the certificates the harness makes; longer
// than any test.
const certTTL = 24 * time.Hour

// NewDatabaseCA makes a fresh database CA (cluster "dbtest") for a test.
func NewDatabaseCA(t testing.TB) *ca.Authority {
	t.Helper()
	a, err := ca.NewAuthority(ca.DatabaseCA, "dbtest", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ServerFiles makes a server key and a certificate signed by dbCA for
// hosts (default: 127.0.0.1, localhost and ::1) and writes them, with
// dbCA's certificate as the trusted client CA, with
// ca.WriteDatabaseServerFiles (what `pctl auth sign --format db` uses)
// under t.TempDir(). It returns the prefix for [Options.CertPrefix].
func ServerFiles(t testing.TB, dbCA *ca.Authority, hosts ...string) (prefix string) {
	t.Helper()
	prefix = filepath.Join(t.TempDir(), "server")
	if err := writeServerFiles(dbCA, prefix, hosts); err != nil {
		t.Fatal(err)
	}
	return prefix
}

func writeServerFiles(dbCA *ca.Authority, prefix string, hosts []string) error {
	if len(hosts) == 0 {
		hosts = []string{Host, "localhost", "::1"}
	}
	key, err := ca.GenerateKey()
	if err != nil {
		return err
	}
	cert, err := dbCA.SignDatabaseServer(key.Public(), hosts, certTTL)
	if err != nil {
		return err
	}
	return ca.WriteDatabaseServerFiles(prefix, cert.Raw, key, []*x509.Certificate{dbCA.Cert})
}

// ClientFiles makes a key and a client certificate for dbUser (subject
// CN=dbUser) signed by dbCA and writes them as PEM under t.TempDir(); the
// key is PKCS#8 with mode 0600, as libpq requires.
func ClientFiles(t testing.TB, dbCA *ca.Authority, dbUser string) (certFile, keyFile string) {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := dbCA.SignDatabaseClient(key.Public(), dbUser, certTTL)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile = filepath.Join(dir, "client.crt")
	keyFile = filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, ca.EncodeCertPEM(cert.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// ClientTLS returns a TLS configuration that presents the client
// certificate in certFile/keyFile and verifies the server's certificate
// against the CA certificates in caFile for the name 127.0.0.1.
func ClientTLS(t testing.TB, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("dbtest: %s holds no PEM certificates", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   Host,
		MinVersion:   tls.VersionTLS12,
	}
}
