package authtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// KeyPair makes a key and returns it with its public key in the PEM form
// that login, join and signing requests carry.
func KeyPair(t testing.TB) (publicKeyPEM string, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// TLSCertificate pairs certPEM, as the service returns it, with key.
func TLSCertificate(t testing.TB, certPEM string, key crypto.Signer) *tls.Certificate {
	t.Helper()
	cert, err := ca.ParseCertPEM([]byte(certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// AddUser creates a user as the admin. With an empty password the user
// waits for sign-up, and AddUser returns the sign-up token.
func (c *Cluster) AddUser(t testing.TB, name, password string, roles []string, traits map[string][]string) (signupToken string) {
	t.Helper()
	resp, err := c.admin.CreateUser(context.Background(), authclient.CreateUserRequest{
		User:     authclient.User{Name: name, Roles: roles, Traits: traits},
		Password: password,
	})
	if err != nil {
		t.Fatalf("creating user %s: %v", name, err)
	}
	return resp.SignupToken
}

// Login logs name in directly at the service with a new key and returns a
// client that presents the user certificate, the login's answer and the
// key.
func (c *Cluster) Login(t testing.TB, name, password string) (*authclient.Client, *authclient.LoginResponse, *ecdsa.PrivateKey) {
	t.Helper()
	pub, key := KeyPair(t)
	resp, err := c.Anon(t).Login(context.Background(), authclient.LoginRequest{Username: name, Password: password, PublicKey: pub})
	if err != nil {
		t.Fatalf("login as %s: %v", name, err)
	}
	return c.CertClient(t, resp.Cert, key), resp, key
}

// Join makes a join token of tokenType ("db", "proxy") and joins a host
// with it as role (a ca.SystemRole...); see JoinWithToken.
func (c *Cluster) Join(t testing.TB, tokenType, role, hostID string) (*authclient.Client, *authclient.JoinResponse, *ecdsa.PrivateKey) {
	t.Helper()
	tok, err := c.admin.CreateToken(context.Background(), authclient.CreateTokenRequest{Type: tokenType})
	if err != nil {
		t.Fatal(err)
	}
	return c.JoinWithToken(t, tok.Secret, role, hostID)
}

// JoinWithToken joins a host with a join token as role, with a new key
// (also for its SSH certificate), and returns a client that presents the
// host certificate, the join's answer and the key. hostID may be empty for
// the service to pick one. The certificate names localhost and 127.0.0.1,
// so it also serves TLS on loopback.
func (c *Cluster) JoinWithToken(t testing.TB, token, role, hostID string) (*authclient.Client, *authclient.JoinResponse, *ecdsa.PrivateKey) {
	t.Helper()
	pub, key := KeyPair(t)
	sshKey, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Anon(t).Join(context.Background(), authclient.JoinRequest{
		Token: token, Role: role, HostID: hostID, PublicKey: pub,
		SSHPublicKey: string(ssh.MarshalAuthorizedKey(sshKey)),
		DNSNames:     []string{"localhost"}, IPAddresses: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatalf("join as %s %q: %v", role, hostID, err)
	}
	return c.CertClient(t, resp.Cert, key), resp, key
}

// Advertise joins a database agent hostID with a join token and sends one
// heartbeat for dbs, good for 10 minutes (the longest the service allows):
// only then do the databases exist. Past that on Clock they expire, as
// when the agent stops, unless HeartbeatAgents renews them. It returns
// the agent's client.
func (c *Cluster) Advertise(t testing.TB, hostID string, dbs ...authclient.Database) *authclient.Client {
	t.Helper()
	agent, _, _ := c.Join(t, "db", ca.SystemRoleDatabase, hostID)
	heartbeat(t, agent, dbs)
	c.mu.Lock()
	c.agents = append(c.agents, advertised{agent, dbs})
	c.mu.Unlock()
	return agent
}

// HeartbeatAgents heartbeats again for every agent Advertise started, as
// running agents do, so that their databases outlive a move of Clock.
func (c *Cluster) HeartbeatAgents(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	agents := append([]advertised(nil), c.agents...)
	c.mu.Unlock()
	for _, a := range agents {
		heartbeat(t, a.client, a.dbs)
	}
}

type advertised struct {
	client *authclient.Client
	dbs    []authclient.Database
}

func heartbeat(t testing.TB, agent *authclient.Client, dbs []authclient.Database) {
	t.Helper()
	if err := agent.Heartbeat(context.Background(), authclient.HeartbeatRequest{Databases: dbs, TTL: 10 * time.Minute}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
}
