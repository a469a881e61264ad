package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerateKey(t *testing.T) {
	k := mustKey(t)
	if k.Curve != elliptic.P256() {
		t.Fatalf("curve %v, want P-256", k.Curve.Params().Name)
	}
}

func TestPrivateKeyPEMRoundTrip(t *testing.T) {
	k := mustKey(t)
	p, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("PEM block %v, want PRIVATE KEY", b)
	}
	got, err := ParsePrivateKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(got) {
		t.Fatal("key changed in the round trip")
	}
	// SEC1, after a certificate block, is read too.
	sec1, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(EncodeCertPEM([]byte{1, 2, 3}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	got, err = ParsePrivateKeyPEM(mixed)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(got) {
		t.Fatal("SEC1 key changed in the round trip")
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"junk":      []byte("junk"),
		"cert only": EncodeCertPEM([]byte{1}),
		"bad body":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}),
		"encrypted": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}),
	} {
		if _, err := ParsePrivateKeyPEM(in); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := MarshalPrivateKeyPEM(nil); err == nil {
		t.Error("nil key marshaled")
	}
}

func TestCertPEMRoundTrip(t *testing.T) {
	user := newTestAuthority(t, UserCA, "example", nil)
	host := newTestAuthority(t, HostCA, "example", nil)
	p := user.CertPEM()
	c, err := ParseCertPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Equal(user.Cert) {
		t.Fatal("certificate changed in the round trip")
	}
	keyPEM, _ := user.KeyPEM()
	bundle := bytes.Join([][]byte{keyPEM, user.CertPEM(), host.CertPEM()}, nil)
	certs, err := ParseCertsPEM(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(user.Cert) || !certs[1].Equal(host.Cert) {
		t.Fatalf("parsed %d certificates, want user then host", len(certs))
	}
	if c, err := ParseCertPEM(bundle); err != nil || !c.Equal(user.Cert) {
		t.Fatalf("ParseCertPEM skipped to %v, %v", c, err)
	}
	for name, in := range map[string][]byte{"empty": nil, "key only": keyPEM, "bad body": EncodeCertPEM([]byte{1, 2})} {
		if _, err := ParseCertPEM(in); err == nil {
			t.Errorf("ParseCertPEM %s: parsed", name)
		}
		if _, err := ParseCertsPEM(in); err == nil {
			t.Errorf("ParseCertsPEM %s: parsed", name)
		}
	}
	if _, err := ParseCertsPEM(append(user.CertPEM(), EncodeCertPEM([]byte{1})...)); err == nil {
		t.Error("ParseCertsPEM ignored a broken certificate")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q, %v", b, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := WriteFileAtomic(filepath.Join(dir, "pub.pem"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "pub.pem")); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644 regardless of umask", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func TestWriteDatabaseServerFiles(t *testing.T) {
	db := newTestAuthority(t, DatabaseCA, "example", nil)
	key := mustKey(t)
	cert, err := db.SignDatabaseServer(key.Public(), []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "server")
	if err := WriteDatabaseServerFiles(prefix, cert.Raw, key, []*x509.Certificate{db.Cert}); err != nil {
		t.Fatal(err)
	}
	for ext, perm := range map[string]os.FileMode{".crt": 0o644, ".key": 0o600, ".cas": 0o644} {
		st, err := os.Stat(prefix + ext)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s mode %v, want %v", ext, st.Mode().Perm(), perm)
		}
	}
	// What a database server does with them: load the pair, trust the CAs.
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	if !pair.PrivateKey.(*ecdsa.PrivateKey).Equal(key) {
		t.Fatal("key file holds another key")
	}
	casPEM, err := os.ReadFile(prefix + ".cas")
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ParseCertsPEM(casPEM)
	if err != nil || len(cas) != 1 || !cas[0].Equal(db.Cert) {
		t.Fatalf("cas file: %v, %v", cas, err)
	}

	if err := WriteDatabaseServerFiles(prefix, cert.Raw, mustKey(t), []*x509.Certificate{db.Cert}); err == nil {
		t.Error("mismatched key written")
	}
	if err := WriteDatabaseServerFiles(prefix, cert.Raw, key, nil); err == nil {
		t.Error("no CAs written")
	}
	if err := WriteDatabaseServerFiles(prefix, []byte("junk"), key, []*x509.Certificate{db.Cert}); err == nil {
		t.Error("junk certificate written")
	}
}
