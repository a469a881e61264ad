package ca

import (
	"crypto/x509"
	"testing"
	"time"
)

// BenchmarkSignUser measures issuing an ECDSA P-256 user certificate with an
// identity extension (route and traits), as the Auth service does at login.
func BenchmarkSignUser(b *testing.B) {
	user, err := NewAuthority(UserCA, "example", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	pub := mustKey(b).Public()
	req := SignRequest{PublicKey: pub, TTL: DefaultUserCertTTL, Identity: Identity{
		Kind: KindUser, Username: "alice@example.com", Roles: []string{"access", "dba"},
		Traits:  map[string][]string{"db_users": {"alice", "readonly"}, "db_names": {"app", "analytics"}},
		LoginIP: "192.0.2.7",
		Route:   &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := user.Sign(req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
}

// BenchmarkVerifyUser measures Verifier.Verify of such a certificate.
func BenchmarkVerifyUser(b *testing.B) {
	user, err := NewAuthority(UserCA, "example", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := user.Sign(SignRequest{PublicKey: mustKey(b).Public(), TTL: time.Hour,
		Identity: Identity{Kind: KindUser, Username: "alice", Route: &Route{ServiceName: "pg1"}}})
	if err != nil {
		b.Fatal(err)
	}
	v := &Verifier{Roots: []*x509.Certificate{user.Cert}, Kinds: []CertKind{KindUser}, ClusterName: "example"}
	for b.Loop() {
		if _, err := v.Verify([]*x509.Certificate{cert}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
