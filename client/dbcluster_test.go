package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

// addRole creates a role from YAML.
func (c *testCluster) addRole(t *testing.T, doc string) {
	t.Helper()
	r, err := policy.ParseRole([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.admin.CreateRole(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// addUserWith creates a user with a password, roles and traits.
func (c *testCluster) addUserWith(t *testing.T, name string, roles []string, traits map[string][]string) {
	t.Helper()
	_, err := c.admin.CreateUser(context.Background(), authclient.CreateUserRequest{
		User:     authclient.User{Name: name, Roles: roles, Traits: traits},
		Password: alicePassword,
	})
	if err != nil {
		t.Fatalf("creating user %s: %v", name, err)
	}
}

// advertise joins a database agent hostID with a join token and sends one
// heartbeat for dbs: only then do the databases exist.
func (c *testCluster) advertise(t *testing.T, hostID string, dbs ...authclient.Database) {
	t.Helper()
	ctx := context.Background()
	tok, err := c.admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := authclient.PinnedTLSConfig(c.pin)
	if err != nil {
		t.Fatal(err)
	}
	anon, err := authclient.New(c.addr, authclient.WithTLSConfig(tlsCfg))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := anon.Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleDatabase, HostID: hostID, PublicKey: pub})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	cert, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	id := &authclient.IdentityFile{Key: key, Cert: cert, HostCAs: []*x509.Certificate{c.srv.Authority(ca.HostCA).Cert}}
	agent, err := authclient.New(c.addr, authclient.WithTLSConfig(id.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if err := agent.Heartbeat(ctx, authclient.HeartbeatRequest{Databases: dbs, TTL: 10 * time.Minute}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
}

// newFakeProxy starts a stand-in for the proxy's API on 127.0.0.1:0: it
// answers pings itself with settings and forwards every other call to the
// Auth service the way the proxy does (its own proxy host certificate, the
// client's certificate in the forwarding headers).
func newFakeProxy(t *testing.T, c *testCluster, settings *authclient.ProxySettings) string {
	t.Helper()
	hostCA := c.srv.Authority(ca.HostCA)
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := hostCA.Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: "test", Username: "proxy-1",
			Roles: []string{ca.SystemRoleProxy}},
		TTL:         time.Hour,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Certificate{Certificate: [][]byte{cert.Raw, hostCA.Cert.Raw}, PrivateKey: key, Leaf: cert}
	upstream := &http.Transport{TLSClientConfig: authclient.TLSConfig(&tc, []*x509.Certificate{hostCA.Cert})}
	rp := &httputil.ReverseProxy{
		Transport: upstream,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "https", Host: c.addr})
			pr.Out.Header.Del(authclient.HeaderForwardedCert)
			pr.Out.Header.Set(authclient.HeaderForwardedFor, pr.In.RemoteAddr)
			if pr.In.TLS != nil && len(pr.In.TLS.PeerCertificates) > 0 {
				var parts []string
				for _, pc := range pr.In.TLS.PeerCertificates {
					parts = append(parts, base64.StdEncoding.EncodeToString(pc.Raw))
				}
				pr.Out.Header.Set(authclient.HeaderForwardedCert, strings.Join(parts, ","))
			}
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(authclient.PingResponse{ClusterName: "test", SecondFactor: "off", Proxy: settings})
	})
	mux.Handle("/", rp)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		upstream.CloseIdleConnections()
	})
	return srv.Listener.Addr().String()
}
