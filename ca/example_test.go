package ca_test

import (
	"crypto/x509"
	"fmt"
	"log"
	"time"

	"github.com/portcullis-db/portcullis/ca"
)

// The Auth service signs a route certificate for a key the client made; the
// client's private key never reaches it.
func ExampleAuthority_Sign() {
	userCA, err := ca.NewAuthority(ca.UserCA, "example", nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	clientKey, err := ca.GenerateKey() // on the client
	if err != nil {
		log.Fatal(err)
	}
	cert, err := userCA.Sign(ca.SignRequest{
		PublicKey: clientKey.Public(),
		Identity: ca.Identity{
			Kind:     ca.KindUser,
			Username: "alice",
			Roles:    []string{"access"},
			Traits:   map[string][]string{"db_users": {"alice"}},
			Route:    &ca.Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"},
		},
		TTL:    ca.DefaultUserCertTTL,
		MaxTTL: 8 * time.Hour, // the user's roles allow no more
	})
	if err != nil {
		log.Fatal(err)
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cert.Subject)
	fmt.Println(id.ClusterName, id.Route.ServiceName, id.Route.DBUser, id.Route.DBName)
	fmt.Println(cert.NotAfter.Sub(cert.NotBefore))
	// Output:
	// CN=alice,O=access
	// example pg1 alice app
	// 8h1m0s
}

// The proxy checks a client certificate against the user CA and reads the
// identity from it; a refusal is one sentence for the user.
func ExampleVerifier_Verify() {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	userCA, err := ca.NewAuthority(ca.UserCA, "example", clock, nil)
	if err != nil {
		log.Fatal(err)
	}
	key, err := ca.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	cert, err := userCA.Sign(ca.SignRequest{PublicKey: key.Public(), TTL: 12 * time.Hour,
		Identity: ca.Identity{Kind: ca.KindUser, Username: "alice", Roles: []string{"access"}}})
	if err != nil {
		log.Fatal(err)
	}

	v := &ca.Verifier{
		Roots:       []*x509.Certificate{userCA.Cert},
		Kinds:       []ca.CertKind{ca.KindUser},
		Usage:       x509.ExtKeyUsageClientAuth,
		ClusterName: "example",
		Clock:       clock,
	}
	id, err := v.Verify([]*x509.Certificate{cert})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Username, id.Roles, id.Expires.Format(time.RFC3339))

	now = now.Add(13 * time.Hour) // the next morning
	_, err = v.Verify([]*x509.Certificate{cert})
	fmt.Println(ca.IsExpired(err))
	fmt.Println(err)
	// Output:
	// alice [access] 2026-11-23T20:00:00Z
	// true
	// certificate for alice expired at 2026-11-23T20:00:00Z; log in again
}
