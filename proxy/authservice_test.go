package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
	"github.com/portcullis-db/portcullis/proxy"
)

// logins returns the recorded logins of user.
func logins(rec *authtest.Recorder, user string) []*audit.UserLogin {
	var out []*audit.UserLogin
	for _, e := range rec.OfType(audit.TypeUserLogin) {
		if l := e.(*audit.UserLogin); l.User == user {
			out = append(out, l)
		}
	}
	return out
}

// denials returns the recorded access denials.
func denials(rec *authtest.Recorder) []*audit.AccessDenied {
	var out []*audit.AccessDenied
	for _, e := range rec.OfType(audit.TypeAccessDenied) {
		out = append(out, e.(*audit.AccessDenied))
	}
	return out
}

// proxiedCluster is a real Auth service and, in front of it, a proxy
// (Router + APIForwarder) with a host certificate obtained by joining.
type proxiedCluster struct {
	*authtest.Cluster
	proxyCert *tls.Certificate
	proxyAddr string
	clientIP  string // the address clients of the proxy dial from
}

func newProxiedCluster(t *testing.T) *proxiedCluster {
	t.Helper()
	pc := &proxiedCluster{Cluster: authtest.Start(t)}

	// The proxy joins with a token, like a proxy on another host.
	_, joined, key := pc.Join(t, "proxy", ca.SystemRoleProxy, "")
	pc.proxyCert = authtest.TLSCertificate(t, joined.Cert, key)

	roots := x509.NewCertPool()
	for _, c := range pc.HostCAs() {
		roots.AddCert(c)
	}
	fwd, err := proxy.NewAPIForwarder(proxy.APIForwarderConfig{
		AuthAddr: pc.Addr,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return pc.proxyCert, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	pc.proxyAddr = serveAPI(t, &testPKI{proxyCert: pc.proxyCert}, fwd)

	// Clients dial from another loopback address than the proxy's, so
	// that the Auth service's view of the client tells them apart.
	pc.clientIP = "127.0.0.1"
	if probe, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		probe.Close()
		pc.clientIP = "127.0.0.2"
	}
	return pc
}

func newClient(t *testing.T, addr string, cfg *tls.Config, dial func(context.Context, string, string) (net.Conn, error)) *authclient.Client {
	t.Helper()
	opts := []authclient.Option{authclient.WithTLSConfig(cfg)}
	if dial != nil {
		opts = append(opts, authclient.WithDialContext(dial))
	}
	c, err := authclient.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// viaProxy is a client of the API through the proxy, with cert (nil for
// none), dialing from pc.clientIP.
func (pc *proxiedCluster) viaProxy(t *testing.T, cert *tls.Certificate) *authclient.Client {
	return pc.viaProxyTLS(t, authclient.TLSConfig(cert, pc.HostCAs()))
}

func (pc *proxiedCluster) viaProxyTLS(t *testing.T, cfg *tls.Config) *authclient.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pc.clientIP)}}
	return newClient(t, pc.proxyAddr, cfg, d.DialContext)
}

// login logs name in through the proxy and returns the certificate.
func (pc *proxiedCluster) login(t *testing.T, name, password string) (*tls.Certificate, *ca.Identity) {
	t.Helper()
	pub, key := authtest.KeyPair(t)
	resp, err := pc.viaProxy(t, nil).Login(context.Background(), authclient.LoginRequest{Username: name, Password: password, PublicKey: pub})
	if err != nil {
		t.Fatalf("login as %s through the proxy: %v", name, err)
	}
	cert := authtest.TLSCertificate(t, resp.Cert, key)
	id, err := ca.IdentityFromCertificate(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	return cert, id
}

func TestAPIForwarderWithAuthService(t *testing.T) {
	pc := newProxiedCluster(t)
	ctx := context.Background()
	for _, u := range []authclient.CreateUserRequest{
		{User: authclient.User{Name: "alice", Roles: []string{"access"},
			Traits: map[string][]string{"db_users": {"alice"}, "db_names": {"app"}}}, Password: "alice-password-1"},
		{User: authclient.User{Name: "bob", Roles: []string{"editor"}}, Password: "bob-password-12"},
	} {
		if _, err := pc.Admin().CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("anonymous ping", func(t *testing.T) {
		resp, err := pc.viaProxy(t, nil).Ping(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ClusterName != "test" {
			t.Errorf("cluster %q", resp.ClusterName)
		}
	})

	t.Run("login records the client's address", func(t *testing.T) {
		if pc.clientIP == "127.0.0.1" {
			t.Skip("cannot dial from 127.0.0.2 here, so client and proxy addresses look alike")
		}
		_, id := pc.login(t, "alice", "alice-password-1")
		if id.LoginIP != pc.clientIP {
			t.Errorf("certificate's login IP %q, want the client's %q", id.LoginIP, pc.clientIP)
		}
		logins := logins(pc.Audit, "alice")
		if len(logins) == 0 {
			t.Fatal("no login event")
		}
		if l := logins[len(logins)-1]; !l.Success || l.ClientAddr != pc.clientIP {
			t.Errorf("login event: success %v, client %q; want the client's %q", l.Success, l.ClientAddr, pc.clientIP)
		}
	})

	t.Run("calls are the user's", func(t *testing.T) {
		// An agent advertises a database; users see it without its URI,
		// the proxy itself (a cluster component) with it.
		pub, key := authtest.KeyPair(t)
		agent, err := pc.Server.IssueHostCredentials(ctx, authclient.JoinRequest{Role: ca.SystemRoleDatabase, PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		agentAPI := pc.CertClient(t, agent.Cert, key)
		if err := agentAPI.Heartbeat(ctx, authclient.HeartbeatRequest{Databases: []authclient.Database{
			{Name: "pg1", Protocol: "postgres", URI: "pg1.internal:5432"}}}); err != nil {
			t.Fatal(err)
		}
		asProxy, err := pc.Client(t, authclient.TLSConfig(pc.proxyCert, pc.HostCAs())).ListDatabases(ctx)
		if err != nil || len(asProxy) != 1 || asProxy[0].URI == "" {
			t.Fatalf("the proxy's own listing: %+v, %v", asProxy, err)
		}

		aliceCert, _ := pc.login(t, "alice", "alice-password-1")
		alice := pc.viaProxy(t, aliceCert)
		dbs, err := alice.ListDatabases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(dbs) != 1 || dbs[0].Name != "pg1" || dbs[0].URI != "" {
			t.Errorf("alice's listing through the proxy: %+v; want pg1 without URI", dbs)
		}
		if _, err := alice.ListUsers(ctx); !authclient.IsAccessDenied(err) {
			t.Errorf("alice listing users: %v, want access denied", err)
		}
		if denied := denials(pc.Audit); len(denied) != 1 || denied[0].User != "alice" || denied[0].ClientAddr != pc.clientIP {
			t.Errorf("access-denied events %+v; want one for alice from %s", denied, pc.clientIP)
		}
		bobCert, _ := pc.login(t, "bob", "bob-password-12")
		if users, err := pc.viaProxy(t, bobCert).ListUsers(ctx); err != nil || len(users) != 2 {
			t.Errorf("bob (editor) listing users through the proxy: %d users, %v", len(users), err)
		}
		if _, err := pc.viaProxy(t, nil).ListDatabases(ctx); !authclient.IsUnauthenticated(err) {
			t.Errorf("anonymous listing through the proxy: %v, want unauthenticated", err)
		}
	})

	t.Run("spoofed forwarded headers are stripped", func(t *testing.T) {
		admin, err := authclient.ReadIdentityFile(filepath.Join(pc.Dir, auth.AdminIdentityFile))
		if err != nil {
			t.Fatal(err)
		}
		adminB64 := base64.StdEncoding.EncodeToString(admin.Cert.Raw)
		hc := &http.Client{Transport: &http.Transport{
			TLSClientConfig: authclient.TLSConfig(nil, pc.HostCAs()),
			// HTTP/1.1, so that a Connection header reaches the proxy.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}}
		defer hc.CloseIdleConnections()
		for _, tc := range []struct {
			name, path string
			hdr        http.Header
		}{
			{"admin certificate", "/v1/users", http.Header{authclient.HeaderForwardedCert: {adminB64}}},
			{"lower case", "/v1/users", http.Header{"portcullis-forwarded-cert": {adminB64}, "portcullis-forwarded-for": {"10.9.9.9:1"}}},
			// Were the proxy's own headers dropped, the call would be the
			// proxy's, which may list databases.
			{"hop-by-hop trick", "/v1/inventory/databases", http.Header{"Connection": {"Portcullis-Forwarded-For, Portcullis-Forwarded-Cert"}}},
		} {
			req, _ := http.NewRequest(http.MethodGet, "https://"+pc.proxyAddr+tc.path, nil)
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401 for an anonymous caller", tc.name, resp.StatusCode)
			}
		}
	})

	t.Run("join trust through the proxy", func(t *testing.T) {
		tok, err := pc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
		if err != nil {
			t.Fatal(err)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pc.clientIP)}}
		cas, err := authclient.TrustForJoin(ctx, pc.proxyAddr, tok.Secret, authclient.WithDialContext(d.DialContext))
		if err != nil {
			t.Fatal(err)
		}
		if len(cas) != 1 || !cas[0].Equal(pc.Server.Authority(ca.HostCA).Cert) {
			t.Fatalf("trusted %d CAs, not the cluster's host CA", len(cas))
		}
		// The learnt CA verifies the proxy, and the join goes through it.
		pub, _ := authtest.KeyPair(t)
		if _, err := pc.viaProxyTLS(t, authclient.TLSConfig(nil, cas)).Join(ctx, authclient.JoinRequest{
			Token: tok.Secret, Role: ca.SystemRoleDatabase, PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		if _, err := authclient.TrustForJoin(ctx, pc.proxyAddr, "0123456789abcdef0123456789abcdef"); !authclient.IsUnauthenticated(err) {
			t.Errorf("wrong token: %v, want unauthenticated", err)
		}
	})
}

func TestAPIForwarderAuthDown(t *testing.T) {
	pki := newTestPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()
	fwd, err := proxy.NewAPIForwarder(proxy.APIForwarderConfig{
		AuthAddr:  deadAddr,
		TLSConfig: &tls.Config{RootCAs: pki.hostCA.CertPool(), Certificates: []tls.Certificate{*pki.proxyCert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	addr := serveAPI(t, pki, fwd)
	c := newClient(t, addr, authclient.TLSConfig(nil, []*x509.Certificate{pki.hostCA.Cert}), nil)
	_, err = c.Ping(context.Background())
	var ae *authclient.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || !authclient.IsUnavailable(err) ||
		ae.Message != "the proxy cannot reach the auth service; try again shortly" {
		t.Fatalf("ping with the auth service down: %#v", err)
	}
	if strings.Contains(ae.Error(), deadAddr) {
		t.Errorf("the answer leaks the auth service's address: %q", ae.Error())
	}
}
