package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/proxy"
)

// testPKI is a cluster's host and user CAs with a proxy host certificate.
type testPKI struct {
	hostCA, userCA *ca.Authority
	proxyCert      *tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	hostCA, err := ca.NewAuthority(ca.HostCA, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	userCA, err := ca.NewAuthority(ca.UserCA, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{hostCA: hostCA, userCA: userCA}
	p.proxyCert = signCert(t, hostCA, ca.SignRequest{
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: "test", Username: "proxy-1",
			Roles: []string{ca.SystemRoleProxy}},
		TTL:         time.Hour,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	return p
}

// signCert signs req for a new key and returns it as a TLS certificate.
func signCert(t testing.TB, a *ca.Authority, req ca.SignRequest) *tls.Certificate {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	req.PublicKey = key.Public()
	cert, err := a.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func (p *testPKI) userCert(t testing.TB, name string) *tls.Certificate {
	return signCert(t, p.userCA, ca.SignRequest{
		Identity: ca.Identity{Kind: ca.KindUser, ClusterName: "test", Username: name, Roles: []string{"access"}},
		TTL:      time.Hour,
	})
}

func (p *testPKI) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.proxyCert, nil
}

// clientConfig verifies the proxy as "localhost" and offers protos.
func (p *testPKI) clientConfig(protos []string, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		RootCAs:    p.hostCA.CertPool(),
		ServerName: "localhost",
		NextProtos: protos,
		MinVersion: tls.VersionTLS12,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// serveRouter runs r on a loopback listener until the test ends, and then
// checks that Serve returned ErrRouterClosed.
func serveRouter(t *testing.T, r *proxy.Router) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(l) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; !errors.Is(err, proxy.ErrRouterClosed) {
			t.Errorf("Router.Serve returned %v, want ErrRouterClosed", err)
		}
	})
	return l
}

// connServer runs handle for every connection of l until l closes, and
// waits for the handlers when the test ends.
func connServer(t *testing.T, l net.Listener, handle func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("route Accept: %v, want net.ErrClosed", err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		wg.Wait()
	})
}

// stopHTTP shuts srv down, waiting for its connections to end (a
// connection closed after an oversized request lingers for a moment), and
// checks what Serve returned.
func stopHTTP(t *testing.T, srv *http.Server, serveErr <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("http.Server.Shutdown: %v", err)
		srv.Close()
	}
	// net.ErrClosed: the router was closed first.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		t.Errorf("http.Server.Serve returned %v, want ErrServerClosed", err)
	}
}
