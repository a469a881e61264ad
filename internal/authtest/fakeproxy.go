package authtest

import (
	"crypto/tls"
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
)

// ProxyCertificate returns a host certificate for a proxy "proxy-1",
// signed in-process by the host CA, for localhost and 127.0.0.1, with the
// CA certificate in its chain.
func (c *Cluster) ProxyCertificate(t testing.TB) *tls.Certificate {
	t.Helper()
	hostCA := c.Server.Authority(ca.HostCA)
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := hostCA.Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: ClusterName, Username: "proxy-1",
			Roles: []string{ca.SystemRoleProxy}},
		TTL:         time.Hour,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw, hostCA.Cert.Raw}, PrivateKey: key, Leaf: cert}
}

// StartFakeProxy starts a stand-in for the proxy's API on 127.0.0.1:0 and
// returns its address. It answers pings itself, with settings, and
// forwards every other call to the service the way the proxy does: with
// its own proxy host certificate (ProxyCertificate), the client's
// certificate and address in the forwarding headers.
func (c *Cluster) StartFakeProxy(t testing.TB, settings *authclient.ProxySettings) string {
	t.Helper()
	cert := c.ProxyCertificate(t)
	upstream := &http.Transport{TLSClientConfig: authclient.TLSConfig(cert, c.HostCAs())}
	rp := &httputil.ReverseProxy{
		Transport: upstream,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "https", Host: c.Addr})
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
		json.NewEncoder(w).Encode(authclient.PingResponse{ClusterName: ClusterName, SecondFactor: "off", Proxy: settings})
	})
	mux.Handle("/", rp)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		upstream.CloseIdleConnections()
	})
	return srv.Listener.Addr().String()
}
