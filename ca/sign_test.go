package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)

func userReq(pub any, ttl time.Duration) SignRequest {
	return SignRequest{PublicKey: pub, TTL: ttl, Identity: Identity{Kind: KindUser, Username: "alice", Roles: []string{"access"}}}
}

func TestSignUser(t *testing.T) {
	user := newTestAuthority(t, UserCA, "example", fixedClock(testNow))
	key := mustKey(t)
	cert, err := user.Sign(userReq(key.Public(), 12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotBefore.Equal(testNow.Add(-time.Minute)) || !cert.NotAfter.Equal(testNow.Add(12*time.Hour)) {
		t.Errorf("validity %v..%v", cert.NotBefore, cert.NotAfter)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("usage %v / %v, want ClientAuth / DigitalSignature", cert.ExtKeyUsage, cert.KeyUsage)
	}
	if cert.IsCA || len(cert.DNSNames) > 0 {
		t.Errorf("IsCA %v DNS %v", cert.IsCA, cert.DNSNames)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", cert.SerialNumber)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Error("certificate is not for the requested key")
	}
	if err := cert.CheckSignatureFrom(user.Cert); err != nil {
		t.Error(err)
	}
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterName != "example" {
		t.Errorf("cluster name %q, want the authority's (filled in)", id.ClusterName)
	}
	var ext *pkix.Extension
	for i := range cert.Extensions {
		if cert.Extensions[i].Id.Equal(asn1.ObjectIdentifier{2, 25, 1594013761, 1}) {
			ext = &cert.Extensions[i]
		}
	}
	if ext == nil || ext.Critical {
		t.Errorf("identity extension %+v, want present and non-critical", ext)
	}
	again, err := user.Sign(userReq(key.Public(), 12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestSignHostAndSession(t *testing.T) {
	host := newTestAuthority(t, HostCA, "example", fixedClock(testNow))
	pub := mustKey(t).Public()
	cert, err := host.Sign(SignRequest{PublicKey: pub, TTL: DefaultHostCertTTL,
		Identity: Identity{Kind: KindHost, Username: "proxy-1", Roles: []string{SystemRoleProxy}},
		DNSNames: []string{"proxy.example.com", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("host usage %v", cert.ExtKeyUsage)
	}
	if err := cert.VerifyHostname("proxy.example.com"); err != nil {
		t.Error(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	session, err := host.Sign(SignRequest{PublicKey: pub, TTL: DefaultSessionCertTTL,
		Identity: Identity{Kind: KindSession, Username: "alice", Roles: []string{"access"},
			Route: &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(session.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("session usage %v", session.ExtKeyUsage)
	}
	if !session.NotAfter.Equal(testNow.Add(10 * time.Minute)) {
		t.Errorf("session NotAfter %v", session.NotAfter)
	}
}

func TestSignRefuses(t *testing.T) {
	user := newTestAuthority(t, UserCA, "example", fixedClock(testNow))
	host := newTestAuthority(t, HostCA, "example", fixedClock(testNow))
	db := newTestAuthority(t, DatabaseCA, "example", fixedClock(testNow))
	pub := mustKey(t).Public()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	hostID := Identity{Kind: KindHost, Username: "h", Roles: []string{SystemRoleDatabase}}
	for _, tc := range []struct {
		name string
		a    *Authority
		req  SignRequest
		want string
	}{
		{"zero TTL", user, userReq(pub, 0), "not positive"},
		{"negative TTL", user, userReq(pub, -time.Hour), "not positive"},
		{"negative MaxTTL", user, func() SignRequest { r := userReq(pub, time.Hour); r.MaxTTL = -1; return r }(), "negative"},
		{"sub-second TTL", user, userReq(pub, time.Millisecond), "at once"},
		{"user CA signs host", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: hostID}, "host CA"},
		{"user CA signs session", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindSession, Username: "a"}}, "host CA"},
		{"host CA signs user", host, userReq(pub, time.Hour), "user CA"},
		{"db CA signs user", db, userReq(pub, time.Hour), "SignDatabaseClient"},
		{"unknown kind", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: "root", Username: "a"}}, "unknown"},
		{"no username", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindUser}}, "username is empty"},
		{"control char", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindUser, Username: "a\x00"}}, "unprintable"},
		{"empty role", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindUser, Username: "a", Roles: []string{""}}}, "role is empty"},
		{"other cluster", user, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindUser, Username: "a", ClusterName: "other"}}, "cluster"},
		{"host without roles", host, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindHost, Username: "h"}}, "system role"},
		{"host with user role", host, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindHost, Username: "h", Roles: []string{"access"}}}, "not a system role"},
		{"host with route", host, SignRequest{PublicKey: pub, TTL: time.Hour, Identity: Identity{Kind: KindHost, Username: "h", Roles: []string{SystemRoleProxy}, Route: &Route{}}}, "route"},
		{"user with SANs", user, func() SignRequest { r := userReq(pub, time.Hour); r.DNSNames = []string{"x"}; return r }(), "only for host"},
		{"no key", user, userReq(nil, time.Hour), "no public key"},
		{"small RSA key", user, userReq(&small.PublicKey, time.Hour), "2048"},
		{"P-224 key", user, userReq(&p224.PublicKey, time.Hour), "curve"},
		{"private key", user, userReq(mustKey(t), time.Hour), "not supported"},
		{"expired identity", user, func() SignRequest {
			r := userReq(pub, time.Hour)
			r.Identity.Expires = testNow.Add(-time.Second)
			return r
		}(), "log in again"},
		{"bad trait", user, func() SignRequest {
			r := userReq(pub, time.Hour)
			r.Identity.Traits = map[string][]string{"": {"x"}}
			return r
		}(), "trait name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tc.a.Sign(tc.req)
			if err == nil {
				t.Fatalf("signed %v", cert.Subject)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ca: ") {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestSignAcceptsOtherKeyTypes(t *testing.T) {
	user := newTestAuthority(t, UserCA, "example", nil)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []any{edPub, &rsaKey.PublicKey} {
		cert, err := user.Sign(userReq(pub, time.Hour))
		if err != nil {
			t.Fatalf("%T: %v", pub, err)
		}
		if _, ok := pub.(*rsa.PublicKey); ok && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			t.Error("RSA certificate lacks KeyEncipherment")
		}
	}
}

func TestSignTTLCapping(t *testing.T) {
	clock := &testClock{t: testNow}
	user := newTestAuthority(t, UserCA, "example", clock.Now)
	pub := mustKey(t).Public()
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		maxTTL  time.Duration
		expires time.Time
		want    time.Time
	}{
		{"TTL", 12 * time.Hour, 0, time.Time{}, testNow.Add(12 * time.Hour)},
		{"MaxTTL caps", 48 * time.Hour, 8 * time.Hour, time.Time{}, testNow.Add(8 * time.Hour)},
		{"MaxTTL above TTL", time.Hour, 8 * time.Hour, time.Time{}, testNow.Add(time.Hour)},
		{"Expires caps", 12 * time.Hour, 24 * time.Hour, testNow.Add(3 * time.Hour), testNow.Add(3 * time.Hour)},
		{"Expires caps MaxTTL", 12 * time.Hour, 2 * time.Hour, testNow.Add(time.Hour), testNow.Add(time.Hour)},
		{"Expires later", time.Hour, 0, testNow.Add(3 * time.Hour), testNow.Add(time.Hour)},
		{"Expires sub-second rounds down", time.Hour, 0, testNow.Add(30*time.Minute + 999*time.Millisecond), testNow.Add(30 * time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := userReq(pub, tc.ttl)
			r.MaxTTL = tc.maxTTL
			r.Identity.Expires = tc.expires
			cert, err := user.Sign(r)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.NotAfter.Equal(tc.want) {
				t.Fatalf("NotAfter %v, want %v", cert.NotAfter, tc.want)
			}
			id, err := IdentityFromCertificate(cert)
			if err != nil {
				t.Fatal(err)
			}
			if !id.Expires.Equal(tc.want) {
				t.Fatalf("decoded Expires %v, want %v", id.Expires, tc.want)
			}
		})
	}

	t.Run("CA expiry caps", func(t *testing.T) {
		clock.t = user.Cert.NotAfter.Add(-time.Hour)
		defer func() { clock.t = testNow }()
		cert, err := user.Sign(userReq(pub, 12*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !cert.NotAfter.Equal(user.Cert.NotAfter) {
			t.Fatalf("NotAfter %v, want the CA's %v", cert.NotAfter, user.Cert.NotAfter)
		}
	})
	t.Run("expired CA refuses", func(t *testing.T) {
		clock.t = user.Cert.NotAfter.Add(time.Second)
		defer func() { clock.t = testNow }()
		if _, err := user.Sign(userReq(pub, time.Hour)); err == nil || !strings.Contains(err.Error(), "rotate") {
			t.Fatalf("err = %v, want the CA-expired error", err)
		}
	})
}

func TestSignDatabaseCertificates(t *testing.T) {
	db := newTestAuthority(t, DatabaseCA, "example", fixedClock(testNow))
	pub := mustKey(t).Public()

	client, err := db.SignDatabaseClient(pub, "alice", DefaultDatabaseClientCertTTL)
	if err != nil {
		t.Fatal(err)
	}
	// MariaDB's REQUIRE SUBJECT '/CN=alice' compares the whole subject.
	wantSubject, _ := asn1.Marshal(pkix.Name{CommonName: "alice"}.ToRDNSequence())
	if string(client.RawSubject) != string(wantSubject) || client.Subject.String() != "CN=alice" || len(client.Subject.Names) != 1 {
		t.Errorf("client subject %v, want exactly CN=alice", client.Subject)
	}
	if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client usage %v", client.ExtKeyUsage)
	}
	if !client.NotAfter.Equal(testNow.Add(time.Hour)) {
		t.Errorf("client NotAfter %v", client.NotAfter)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: db.CertPool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}

	server, err := db.SignDatabaseServer(pub, []string{"db.example.com", "127.0.0.1", "::1", "localhost"}, DefaultDatabaseServerCertTTL)
	if err != nil {
		t.Fatal(err)
	}
	if server.Subject.CommonName != "db.example.com" || !slices.Equal(server.DNSNames, []string{"db.example.com", "localhost"}) || len(server.IPAddresses) != 2 {
		t.Errorf("server CN %q DNS %v IP %v", server.Subject.CommonName, server.DNSNames, server.IPAddresses)
	}
	if !slices.Equal(server.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("server usage %v", server.ExtKeyUsage)
	}
	for _, h := range []string{"db.example.com", "127.0.0.1", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: db.CertPool(), CurrentTime: testNow, DNSName: h}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}

	user := newTestAuthority(t, UserCA, "example", nil)
	if _, err := user.SignDatabaseClient(pub, "alice", time.Hour); err == nil || !strings.Contains(err.Error(), "db CA") {
		t.Errorf("user CA signed a db client cert: %v", err)
	}
	if _, err := user.SignDatabaseServer(pub, []string{"x"}, time.Hour); err == nil {
		t.Error("user CA signed a db server cert")
	}
	if _, err := db.SignDatabaseServer(pub, nil, time.Hour); err == nil {
		t.Error("db server cert without hosts")
	}
	if _, err := db.SignDatabaseClient(pub, "", time.Hour); err == nil {
		t.Error("db client cert without user")
	}
	if _, err := db.SignDatabaseClient(pub, "alice", 0); err == nil {
		t.Error("db client cert with zero TTL")
	}
}

func TestPublicKeyFromCSR(t *testing.T) {
	key := mustKey(t)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKeyFromCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(pub) {
		t.Fatal("wrong public key")
	}
	user := newTestAuthority(t, UserCA, "example", nil)
	if _, err := user.Sign(userReq(pub, time.Hour)); err != nil {
		t.Fatal(err)
	}

	bad := append([]byte(nil), csr...)
	bad[len(bad)-5] ^= 0x01 // inside the signature
	if _, err := PublicKeyFromCSR(bad); err == nil {
		t.Error("CSR with a broken signature accepted")
	}
	if _, err := PublicKeyFromCSR([]byte("not a csr")); err == nil {
		t.Error("junk accepted as a CSR")
	}
}
