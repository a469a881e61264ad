package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// testClock is a clock a test moves by hand.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestAuthority(t testing.TB, typ AuthorityType, cluster string, clock func() time.Time) *Authority {
	t.Helper()
	a, err := NewAuthority(typ, cluster, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewAuthority(t *testing.T) {
	now := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	for _, typ := range []AuthorityType{UserCA, HostCA, DatabaseCA} {
		a := newTestAuthority(t, typ, "example", fixedClock(now))
		c := a.Cert
		if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("%s: IsCA %v BasicConstraintsValid %v MaxPathLen %d MaxPathLenZero %v", typ, c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
		}
		if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("%s: key usage %v", typ, c.KeyUsage)
		}
		if want := "example " + string(typ) + " CA"; c.Subject.CommonName != want || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "example" {
			t.Errorf("%s: subject %v, want CN=%s O=example", typ, c.Subject, want)
		}
		if !c.NotAfter.Equal(now.Add(CAValidity)) || !c.NotBefore.Equal(now.Add(-time.Minute)) {
			t.Errorf("%s: validity %v..%v", typ, c.NotBefore, c.NotAfter)
		}
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: public key %T, want ECDSA P-256", typ, c.PublicKey)
		}
		if c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial has %d bits, want a random 128-bit number", typ, c.SerialNumber.BitLen())
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("%s: not self-signed: %v", typ, err)
		}
		if fp := a.Fingerprint(); !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
			t.Errorf("%s: fingerprint %q", typ, fp)
		}
	}
	a1 := newTestAuthority(t, UserCA, "example", nil)
	a2 := newTestAuthority(t, UserCA, "example", nil)
	if a1.Cert.SerialNumber.Cmp(a2.Cert.SerialNumber) == 0 || a1.Fingerprint() == a2.Fingerprint() {
		t.Error("two authorities share a serial number or a key")
	}
	if _, err := NewAuthority("root", "example", nil, nil); err == nil {
		t.Error("unknown authority type accepted")
	}
	if _, err := NewAuthority(UserCA, "", nil, nil); err == nil {
		t.Error("empty cluster name accepted")
	}
}

func TestParseAuthorityRoundTrip(t *testing.T) {
	a := newTestAuthority(t, HostCA, "example", nil)
	keyPEM, err := a.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("key PEM is not PKCS#8:\n%s", keyPEM)
	}
	b, err := ParseAuthority(HostCA, a.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if b.Type != HostCA || b.ClusterName != "example" || !b.Cert.Equal(a.Cert) || b.Fingerprint() != a.Fingerprint() {
		t.Fatalf("parsed authority differs: %+v", b)
	}
	// The parsed authority signs certificates that the original's pool trusts.
	cert, err := b.Sign(SignRequest{PublicKey: mustKey(t).Public(), TTL: time.Hour,
		Identity: Identity{Kind: KindHost, Username: "proxy-1", Roles: []string{SystemRoleProxy}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}

	other := newTestAuthority(t, HostCA, "example", nil)
	otherKey, _ := other.KeyPEM()
	if _, err := ParseAuthority(HostCA, a.CertPEM(), otherKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched key: err = %v", err)
	}
	if _, err := ParseAuthority(UserCA, a.CertPEM(), keyPEM); err == nil || !strings.Contains(err.Error(), "host CA") {
		t.Errorf("host CA loaded as user CA: err = %v", err)
	}
	leafKey := mustKey(t)
	leafKeyPEM, _ := MarshalPrivateKeyPEM(leafKey)
	leaf, err := a.Sign(SignRequest{PublicKey: leafKey.Public(), TTL: time.Hour,
		Identity: Identity{Kind: KindHost, Username: "h", Roles: []string{SystemRoleDatabase}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAuthority(HostCA, EncodeCertPEM(leaf.Raw), leafKeyPEM); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf loaded as CA: err = %v", err)
	}
	if _, err := ParseAuthority(HostCA, []byte("junk"), keyPEM); err == nil {
		t.Error("junk certificate accepted")
	}
}

func TestFingerprintIsOfPublicKey(t *testing.T) {
	a := newTestAuthority(t, UserCA, "example", nil)
	// Re-issue the CA certificate for the same key: the pin must not change.
	tmpl := *a.Cert
	tmpl.NotAfter = tmpl.NotAfter.Add(time.Hour)
	der, err := x509.CreateCertificate(nil, &tmpl, &tmpl, a.Signer.Public(), a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	reissued, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(reissued) != a.Fingerprint() {
		t.Fatal("fingerprint changed when the CA was re-issued for the same key")
	}
}
