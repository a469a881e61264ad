package dbagent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/hostcert"
)

func testCA(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRootsFromCAFileFollowTheFile(t *testing.T) {
	a, b := testCA(t, "a"), testCA(t, "b")
	path := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, path, a)
	db := &Database{Name: "pg1", TLS: DatabaseTLS{CAFile: path}}
	var c rootsCache
	p1, err := c.roots(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.Equal(poolOf(a)) {
		t.Error("the pool does not hold the file's CA")
	}
	if p2, err := c.roots(db, nil); err != nil || p2 != p1 {
		t.Errorf("second session: %p, %v; want the cached pool %p", p2, err, p1)
	}
	// A replaced file is read by the next session.
	writePEM(t, path, a, b)
	p3, err := c.roots(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 || !p3.Equal(poolOf(a, b)) {
		t.Error("the pool did not follow the replaced file")
	}

	if err := os.WriteFile(path, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.roots(db, nil); err == nil || !strings.Contains(err.Error(), "holds no certificate") {
		t.Errorf("a file without certificates: %v", err)
	}
	os.Remove(path)
	if _, err := c.roots(db, nil); err == nil || !strings.Contains(err.Error(), "tls.ca_file of database pg1") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestRootsFromCredentialsFollowRenewals(t *testing.T) {
	a, b := testCA(t, "a"), testCA(t, "b")
	db := &Database{Name: "pg1"}
	var c rootsCache
	creds := &hostcert.Credentials{DBCAs: []*x509.Certificate{a}}
	p1, err := c.roots(db, creds)
	if err != nil || !p1.Equal(poolOf(a)) {
		t.Fatalf("pool of the cluster's database CAs: %v", err)
	}
	if p2, _ := c.roots(db, creds); p2 != p1 {
		t.Error("the same credentials made a new pool")
	}
	renewed := &hostcert.Credentials{DBCAs: []*x509.Certificate{a, b}}
	if p3, _ := c.roots(db, renewed); p3 == p1 || !p3.Equal(poolOf(a, b)) {
		t.Error("the pool did not follow renewed credentials")
	}
}
