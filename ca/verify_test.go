package ca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type verifyFixture struct {
	clock   *testClock
	user    *Authority
	host    *Authority
	foreign *Authority // same cluster name, different key
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	clock := &testClock{t: testNow}
	return &verifyFixture{
		clock:   clock,
		user:    newTestAuthority(t, UserCA, "example", clock.Now),
		host:    newTestAuthority(t, HostCA, "example", clock.Now),
		foreign: newTestAuthority(t, UserCA, "example", clock.Now),
	}
}

func (f *verifyFixture) userCert(t *testing.T, a *Authority, ttl time.Duration) *x509.Certificate {
	t.Helper()
	c, err := a.Sign(SignRequest{PublicKey: mustKey(t).Public(), TTL: ttl,
		Identity: Identity{Kind: KindUser, Username: "alice", Roles: []string{"access"},
			Route: &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *verifyFixture) verifier() *Verifier {
	return &Verifier{Roots: []*x509.Certificate{f.user.Cert}, Kinds: []CertKind{KindUser},
		Usage: x509.ExtKeyUsageClientAuth, ClusterName: "example", Clock: f.clock.Now}
}

func wantReason(t *testing.T, err error, want CertErrorReason) *CertError {
	t.Helper()
	var ce *CertError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *CertError with reason %v", err, err, want)
	}
	if ce.Reason != want {
		t.Fatalf("reason %v (%q), want %v", ce.Reason, ce, want)
	}
	msg := ce.Error()
	if strings.Count(msg, ";") != 1 || strings.Contains(msg, "\n") || strings.HasSuffix(msg, ".") {
		t.Errorf("message %q is not one sentence: what went wrong; what to do", msg)
	}
	return ce
}

func TestVerifyAccepts(t *testing.T) {
	f := newVerifyFixture(t)
	cert := f.userCert(t, f.user, 12*time.Hour)
	// During rotation two roots are trusted.
	v := f.verifier()
	v.Roots = append(v.Roots, f.host.Cert)
	for _, d := range []time.Duration{-time.Minute, 0, 6 * time.Hour, 12 * time.Hour} {
		f.clock.t = testNow.Add(d)
		id, err := v.Verify([]*x509.Certificate{cert})
		if err != nil {
			t.Fatalf("at %v: %v", d, err)
		}
		if id.Username != "alice" || id.Route.DBName != "app" || !id.Expires.Equal(cert.NotAfter) {
			t.Fatalf("identity %+v", id)
		}
	}
	if err := v.VerifyPeerCertificate([][]byte{cert.Raw}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyForeignCA(t *testing.T) {
	f := newVerifyFixture(t)
	cert := f.userCert(t, f.foreign, time.Hour)
	ce := wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{cert})), ReasonUnknownAuthority)
	if ce.Subject != "alice" || !strings.Contains(ce.Error(), "not signed by a trusted certificate authority") {
		t.Errorf("error %q", ce)
	}
	var uae x509.UnknownAuthorityError
	if !errors.As(ce, &uae) {
		t.Errorf("cause %v is not an x509.UnknownAuthorityError", ce.Err)
	}
	// Foreign and expired: still reported as foreign.
	f.clock.Advance(48 * time.Hour)
	wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{cert})), ReasonUnknownAuthority)
	// Foreign and not yet valid: still foreign.
	f.clock.t = testNow.Add(-time.Hour)
	wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{cert})), ReasonUnknownAuthority)
	// Signed by the host CA of the same cluster, verified against the user CA.
	hostSigned, err := f.host.Sign(SignRequest{PublicKey: mustKey(t).Public(), TTL: time.Hour,
		Identity: Identity{Kind: KindSession, Username: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.t = testNow
	if !IsUnknownAuthority(errOf(f.verifier().Verify([]*x509.Certificate{hostSigned}))) {
		t.Error("host-CA certificate accepted by a user-CA verifier")
	}
	// A verifier with no roots trusts nothing.
	if !IsUnknownAuthority(errOf((&Verifier{}).Verify([]*x509.Certificate{f.userCert(t, f.user, time.Hour)}))) {
		t.Error("zero Verifier accepted a certificate")
	}
}

func TestVerifyExpiredAndNotYetValid(t *testing.T) {
	f := newVerifyFixture(t)
	cert := f.userCert(t, f.user, time.Hour)
	f.clock.t = cert.NotAfter.Add(time.Second)
	ce := wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{cert})), ReasonExpired)
	if want := "certificate for alice expired at 2026-11-23T21:00:00Z; log in again"; ce.Error() != want {
		t.Errorf("message %q, want %q", ce.Error(), want)
	}
	if !IsExpired(ce) || IsUnknownAuthority(ce) {
		t.Error("IsExpired/IsUnknownAuthority disagree with the reason")
	}
	f.clock.t = cert.NotBefore.Add(-time.Second)
	ce = wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{cert})), ReasonNotYetValid)
	if !strings.Contains(ce.Error(), "not valid until 2026-11-23T19:59:00Z") || !IsNotYetValid(ce) {
		t.Errorf("message %q", ce)
	}
}

func errOf(_ *Identity, err error) error { return err }

// resignWith re-issues cert with its extension value replaced by value,
// claiming to come from issuer but signed by signerKey (which may or may not
// be the issuer's).
func resign(t *testing.T, cert *x509.Certificate, issuer *x509.Certificate, a *Authority, value []byte) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: cert.SerialNumber, Subject: cert.Subject, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		KeyUsage: cert.KeyUsage, ExtKeyUsage: cert.ExtKeyUsage, BasicConstraintsValid: true}
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidIdentity()) {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: e.Id, Value: value})
		}
	}
	der, err := x509.CreateCertificate(nil, tmpl, issuer, cert.PublicKey, a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func identityValue(cert *x509.Certificate) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidIdentity()) {
			return append([]byte(nil), e.Value...)
		}
	}
	return nil
}

func TestVerifyTampered(t *testing.T) {
	f := newVerifyFixture(t)
	cert := f.userCert(t, f.user, time.Hour)

	t.Run("byte flipped in place", func(t *testing.T) {
		raw := append([]byte(nil), cert.Raw...)
		i := bytes.Index(raw, []byte("pg1"))
		raw[i] = 'X' // route service name, inside the signed extension
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{c})), ReasonUnknownAuthority)
	})
	t.Run("re-signed with another key", func(t *testing.T) {
		value := identityValue(cert)
		value[bytes.Index(value, []byte("app"))] = 'X'
		// Claims the real CA as issuer (same name and key ID) but is signed
		// by the foreign CA's key.
		fakeIssuer := *f.user.Cert
		fakeIssuer.PublicKey = f.foreign.Signer.Public()
		c := resign(t, cert, &fakeIssuer, f.foreign, value)
		if !bytes.Equal(c.RawIssuer, cert.RawIssuer) || !bytes.Equal(c.AuthorityKeyId, cert.AuthorityKeyId) {
			t.Fatal("forgery does not name the real CA as issuer")
		}
		wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{c})), ReasonUnknownAuthority)
	})
	t.Run("signed by the CA with a corrupt extension", func(t *testing.T) {
		value := identityValue(cert)
		value = value[:len(value)-1] // truncated
		c := resign(t, cert, f.user.Cert, f.user, value)
		ce := wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{c})), ReasonBadIdentity)
		if !IsBadIdentity(ce) || ce.Err == nil {
			t.Errorf("err %v, cause %v", ce, ce.Err)
		}
	})
	t.Run("signed by the CA without an extension", func(t *testing.T) {
		c, err := f.user.issue(&x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, cert.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{c})), ReasonBadIdentity)
	})
	t.Run("the CA certificate itself", func(t *testing.T) {
		wantReason(t, errOf(f.verifier().Verify([]*x509.Certificate{f.user.Cert})), ReasonBadIdentity)
	})
	t.Run("garbage in the TLS form", func(t *testing.T) {
		if !IsBadIdentity(f.verifier().VerifyPeerCertificate([][]byte{[]byte("junk")}, nil)) {
			t.Error("junk certificate not refused as a bad identity")
		}
		wantReason(t, f.verifier().VerifyPeerCertificate(nil, nil), ReasonUnknownAuthority)
		wantReason(t, errOf(f.verifier().Verify(nil)), ReasonUnknownAuthority)
	})
}

func TestVerifyKindUsageCluster(t *testing.T) {
	f := newVerifyFixture(t)
	pub := mustKey(t).Public()
	host, err := f.host.Sign(SignRequest{PublicKey: pub, TTL: time.Hour,
		Identity: Identity{Kind: KindHost, Username: "proxy-1", Roles: []string{SystemRoleProxy}}})
	if err != nil {
		t.Fatal(err)
	}
	session, err := f.host.Sign(SignRequest{PublicKey: pub, TTL: time.Hour,
		Identity: Identity{Kind: KindSession, Username: "alice", Route: &Route{ServiceName: "pg1"}}})
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Roots: []*x509.Certificate{f.host.Cert}, Kinds: []CertKind{KindSession}, Usage: x509.ExtKeyUsageClientAuth, Clock: f.clock.Now}
	ce := wantReason(t, errOf(v.Verify([]*x509.Certificate{host})), ReasonWrongKind)
	if want := "certificate for proxy-1 is a host certificate where a session certificate is required; use the certificate issued for this purpose"; ce.Error() != want {
		t.Errorf("message %q, want %q", ce, want)
	}
	if !IsWrongKind(ce) {
		t.Error("IsWrongKind false")
	}
	if _, err := v.Verify([]*x509.Certificate{session}); err != nil {
		t.Fatal(err)
	}
	v.Kinds = nil
	if _, err := v.Verify([]*x509.Certificate{host}); err != nil {
		t.Fatalf("empty Kinds refused a host cert: %v", err)
	}

	// Usage: a session (client-only) certificate used as a server.
	v.Usage = x509.ExtKeyUsageServerAuth
	if ce := wantReason(t, errOf(v.Verify([]*x509.Certificate{session})), ReasonWrongUsage); !IsWrongUsage(ce) || !strings.Contains(ce.Error(), "server authentication") {
		t.Errorf("usage error %q", ce)
	}
	if _, err := v.Verify([]*x509.Certificate{host}); err != nil {
		t.Fatalf("host cert refused for server auth: %v", err)
	}
	v.Usage = x509.ExtKeyUsageAny
	if _, err := v.Verify([]*x509.Certificate{session}); err != nil {
		t.Fatalf("zero Usage checked usage: %v", err)
	}

	// Cluster.
	other := newTestAuthority(t, UserCA, "other", f.clock.Now)
	cert := f.userCert(t, other, time.Hour)
	v2 := f.verifier()
	v2.Roots = append(v2.Roots, other.Cert)
	ce = wantReason(t, errOf(v2.Verify([]*x509.Certificate{cert})), ReasonWrongCluster)
	if !strings.Contains(ce.Error(), "cluster other, not example") || !IsWrongCluster(ce) {
		t.Errorf("message %q", ce)
	}
	v2.ClusterName = ""
	if _, err := v2.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatalf("empty ClusterName checked the cluster: %v", err)
	}
}

// The verifier works as tls.Config.VerifyPeerCertificate on a real
// connection: a trusted client gets through, a foreign one is refused.
func TestVerifyPeerCertificateOverTLS(t *testing.T) {
	f := newVerifyFixture(t)
	f.clock.t = time.Now()
	serverKey := mustKey(t)
	serverCert, err := f.host.Sign(SignRequest{PublicKey: serverKey.Public(), TTL: time.Hour,
		Identity: Identity{Kind: KindHost, Username: "proxy-1", Roles: []string{SystemRoleProxy}}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates:          []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: f.verifier().VerifyPeerCertificate,
		MinVersion:            tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					io.WriteString(c, "ok")
				}
			}()
		}
	}()
	dial := func(a *Authority) error {
		key := mustKey(t)
		c, err := a.Sign(SignRequest{PublicKey: key.Public(), TTL: time.Hour, Identity: Identity{Kind: KindUser, Username: "alice"}})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs:      f.host.CertPool(),
			ServerName:   "127.0.0.1",
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.Raw}, PrivateKey: key}},
			MinVersion:   tls.VersionTLS12,
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		b, err := io.ReadAll(conn)
		if err == nil && string(b) != "ok" {
			err = errors.New("no greeting")
		}
		return err
	}
	if err := dial(f.user); err != nil {
		t.Fatalf("trusted client: %v", err)
	}
	if err := dial(f.foreign); err == nil {
		t.Fatal("foreign client got through")
	}
}

func TestCertErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  *CertError
		want string
	}{
		{&CertError{Reason: ReasonExpired, Subject: "bob"}, "certificate for bob has expired; log in again"},
		{&CertError{Reason: ReasonUnknownAuthority}, "certificate is not signed by a trusted certificate authority of this cluster; log in to this cluster again"},
		{&CertError{Reason: ReasonWrongCluster, Subject: "bob"}, "certificate for bob was issued for another cluster; log in to this cluster"},
		{&CertError{Reason: ReasonBadIdentity, Subject: "evil\n\x1b[31m"}, `certificate for "evil\n\x1b[31m" carries a missing or corrupt identity; log in again to get a new certificate`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	long := (&CertError{Reason: ReasonExpired, Subject: strings.Repeat("a", 1000)}).Error()
	if len(long) > 200 {
		t.Errorf("a long subject is not shortened: %d bytes", len(long))
	}
	cause := errors.New("cause")
	if !errors.Is(&CertError{Reason: ReasonBadIdentity, Err: cause}, cause) {
		t.Error("Unwrap does not reach the cause")
	}
	if IsExpired(errors.New("x")) || IsExpired(nil) {
		t.Error("IsExpired true for a non-CertError")
	}
}
