package proxy_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/proxy"
)

// A session resumes only the TLS session of its own session certificate:
// the agent sees each user's identity, never a resumed session of another.
func TestDispatcherResumesOnlyTheSameIdentity(t *testing.T) {
	pki := newTestPKI(t)
	agentCert := signCert(t, pki.hostCA, ca.SignRequest{
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: "test", Username: "agent-1", Roles: []string{ca.SystemRoleDatabase}},
		TTL:      time.Hour,
		DNSNames: []string{"agent-1"},
	})
	route := &ca.Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "app"}
	userCert := func(name string) *x509.Certificate {
		return signCert(t, pki.userCA, ca.SignRequest{
			Identity: ca.Identity{Kind: ca.KindUser, ClusterName: "test", Username: name, Roles: []string{"access"}, Route: route},
			TTL:      time.Hour,
		}).Leaf
	}
	alice, bob := userCert("alice"), userCert("bob")
	verifier := &ca.Verifier{Roots: []*x509.Certificate{pki.hostCA.Cert}, Kinds: []ca.CertKind{ca.KindSession},
		Usage: x509.ExtKeyUsageClientAuth, ClusterName: "test"}
	var mu sync.Mutex
	var seen []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := &proxy.Dispatcher{
		Tunnels: &loopTunnels{
			l: l,
			serverConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*agentCert},
				ClientAuth: tls.RequireAnyClientCert},
			verify: func(chain []*x509.Certificate) error {
				id, err := verifier.Verify(chain)
				if err == nil {
					mu.Lock()
					seen = append(seen, id.Username)
					mu.Unlock()
				}
				return err
			},
		},
		SignSession: func(ctx context.Context, userCert *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
			id, err := ca.IdentityFromCertificate(userCert)
			if err != nil {
				return nil, err
			}
			id.Kind = ca.KindSession
			return pki.hostCA.Sign(ca.SignRequest{PublicKey: pub, Identity: *id, TTL: 10 * time.Minute})
		},
		HostCAs: func() []*x509.Certificate { return []*x509.Certificate{pki.hostCA.Cert} },
	}
	open := func(user *x509.Certificate) bool {
		t.Helper()
		conn, err := d.DialAgent(context.Background(), "agent-1", user, protocol.SessionRequest{Type: protocol.SessionConnect})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var ok [1]byte
		if _, err := conn.Read(ok[:]); err != nil {
			t.Fatal(err)
		}
		return conn.ConnectionState().DidResume
	}
	var resumed []bool
	for _, u := range []*x509.Certificate{alice, alice, bob, bob, alice} {
		resumed = append(resumed, open(u))
	}
	wantSeen := []string{"alice", "alice", "bob", "bob", "alice"}
	mu.Lock()
	defer mu.Unlock()
	for i := range wantSeen {
		if i >= len(seen) || seen[i] != wantSeen[i] {
			t.Fatalf("the agent saw %v, want %v", seen, wantSeen)
		}
	}
	if want := []bool{false, true, false, true, true}; !slices.Equal(resumed, want) {
		t.Fatalf("resumed = %v, want %v (each identity resumes only its own sessions)", resumed, want)
	}
}
